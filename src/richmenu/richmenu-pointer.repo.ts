import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

/**
 * What LINE's default rich menu and the aliases Kizuna made point at, as Kizuna last set them
 * (richmenu_pointer). `lineRichMenuId` null: the default was cleared. Not `settled`: a call was
 * sent whose answer was not recorded, so LINE may point anywhere.
 */
export type RichMenuPointer = { lineRichMenuId: string | null; settled: boolean }

export const DEFAULT_POINTER = 'default'
export const ALIAS_POINTER = 'alias:'

export function aliasPointer(alias: string): string {
  return `${ALIAS_POINTER}${alias}`
}

/** Every pointer recorded, by its key ('default', 'alias:<id>'). */
export async function listPointers(db: Db): Promise<Map<string, RichMenuPointer>> {
  const rows = await db.selectFrom('richmenu_pointer').selectAll().execute()
  return new Map(
    rows.map((r) => [r.pointer, { lineRichMenuId: r.line_rich_menu_id, settled: r.settled }]),
  )
}

/** Recorded before LINE is asked to move the pointer: until recordPointer, it is unknown. */
export async function unsettlePointer(db: Db, pointer: string): Promise<void> {
  await db
    .insertInto('richmenu_pointer')
    .values({ pointer, settled: false })
    .onConflict((oc) =>
      oc.column('pointer').doUpdateSet({ settled: false, updated_at: sql`now()` }),
    )
    .execute()
}

/** LINE answered: the pointer is at `lineRichMenuId` (null: no default). */
export async function recordPointer(db: Db, pointer: string, lineRichMenuId: string | null) {
  await db
    .updateTable('richmenu_pointer')
    .set({ line_rich_menu_id: lineRichMenuId, settled: true, updated_at: sql`now()` })
    .where('pointer', '=', pointer)
    .execute()
}

/** The alias is deleted at LINE: nothing left to point. */
export async function forgetPointer(db: Db, pointer: string): Promise<void> {
  await db.deleteFrom('richmenu_pointer').where('pointer', '=', pointer).execute()
}
