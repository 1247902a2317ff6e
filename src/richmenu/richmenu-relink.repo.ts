import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

/**
 * Whether a relink is owed (richmenu_relink, one row): `generation` counts every time one was
 * owed, so that a relink clears only what it read before it started.
 */
export type RelinkOwed = { owed: boolean; generation: string }

/**
 * A relink is owed: menus changed (written with the change, before the relink is queued in
 * Redis, so a relink Redis did not take is queued again by the next deploy), or a relink found
 * another under way (which then makes one more pass: relinkRichMenus).
 */
export async function oweRelink(db: Db): Promise<void> {
  await db
    .updateTable('richmenu_relink')
    .set({ owed: true, generation: sql`generation + 1`, updated_at: sql`now()` })
    .execute()
}

export async function readRelinkOwed(db: Db): Promise<RelinkOwed> {
  const row = await db
    .selectFrom('richmenu_relink')
    .select(['owed', 'generation'])
    .executeTakeFirst()
  return { owed: row?.owed ?? false, generation: String(row?.generation ?? 0) }
}

/** A relink that read `read` before it started ran to the end: settled, unless owed again since. */
export async function settleRelink(db: Db, read: RelinkOwed): Promise<void> {
  if (!read.owed) return
  await db
    .updateTable('richmenu_relink')
    .set({ owed: false, updated_at: sql`now()` })
    .where('generation', '=', read.generation)
    .where('owed', '=', true)
    .execute()
}
