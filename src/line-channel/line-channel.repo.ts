import { type Selectable, sql } from 'kysely'
import type { DB } from '../platform/db.generated.ts'
import type { Database } from '../platform/db.ts'

export type LineChannelRow = Pick<Selectable<DB['line_channel']>, 'bot_user_id' | 'recorded_at'>

/**
 * Whether the table recording the channel exists: not before the migration creating it (the
 * first start after the upgrade to it, which migrates first and checks then).
 */
export async function lineChannelTableExists(db: Database): Promise<boolean> {
  const { rows } = await sql<{
    table: string | null
  }>`select to_regclass('line_channel')::text as table`.execute(db)
  return rows[0]?.table != null
}

/** Whether the database holds any LINE user (a follow, a message) of whichever channel. */
export async function hasLineUsers(db: Database): Promise<boolean> {
  const row = await db.selectFrom('line_user').select('line_uid').limit(1).executeTakeFirst()
  return row !== undefined
}

/** The channel this database serves, or undefined before any was recorded. */
export function findLineChannel(db: Database): Promise<LineChannelRow | undefined> {
  return db.selectFrom('line_channel').select(['bot_user_id', 'recorded_at']).executeTakeFirst()
}

/**
 * Records `botUserId` when no channel is recorded yet, and returns the channel recorded: this one,
 * or the one already there (two processes starting at once on a new database: the first wins,
 * the other compares against it).
 */
export async function recordLineChannelIfNone(
  db: Database,
  botUserId: string,
): Promise<{ row: LineChannelRow; inserted: boolean }> {
  const inserted = await db
    .insertInto('line_channel')
    .values({ bot_user_id: botUserId })
    .onConflict((oc) => oc.column('singleton').doNothing())
    .returning(['bot_user_id', 'recorded_at'])
    .executeTakeFirst()
  if (inserted) return { row: inserted, inserted: true }
  const row = await findLineChannel(db)
  if (!row) throw new Error('line_channel: a row was there, then was not')
  return { row, inserted: false }
}

/** Records `botUserId` as the channel, whatever was recorded; returns what it replaced. */
export function replaceLineChannel(
  db: Database,
  botUserId: string,
): Promise<LineChannelRow | undefined> {
  return db.transaction().execute(async (trx) => {
    const before = await trx
      .selectFrom('line_channel')
      .select(['bot_user_id', 'recorded_at'])
      .forUpdate()
      .executeTakeFirst()
    if (before?.bot_user_id === botUserId) return before
    await trx
      .insertInto('line_channel')
      .values({ bot_user_id: botUserId })
      .onConflict((oc) =>
        oc.column('singleton').doUpdateSet({ bot_user_id: botUserId, recorded_at: sql`now()` }),
      )
      .execute()
    return before
  })
}
