import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { afterKeyset, type Keyset } from '../platform/keyset.ts'

/**
 * Records, in the erasure's transaction, that the menus of these LINE user ids (the ones it
 * replaced with tombstones) are to be unlinked at LINE once it committed: after the commit no
 * other row names them, and a process that dies before its call, or a LINE that refuses it,
 * would leave the person's segment menu shown for good. Returns the rows' ids, for
 * unlinkErasedMenus (erased-unlink.service.ts); the sweeper queues whatever is left. A LINE
 * user id waiting already (erased, back as a friend, erased again) keeps its row, counted from
 * now.
 */
export async function insertErasedUnlinks(db: Db, lineUids: string[]): Promise<string[]> {
  if (lineUids.length === 0) return []
  const { rows } = await sql<{ id: string }>`
    insert into erased_menu_unlink (line_uid) select unnest(${[...new Set(lineUids)]}::text[])
    on conflict (line_uid) do update set created_at = excluded.created_at
    returning id`.execute(db)
  return rows.map((r) => r.id)
}

/**
 * Takes these rows for an unlink call (a lease of `leaseSeconds`): those due, that no one else
 * holds and no retry waits for. Returns what it took, with the LINE user ids.
 */
export async function claimErasedUnlinks(db: Db, ids: string[], leaseSeconds: number) {
  if (ids.length === 0) return []
  const { rows } = await sql<{ id: string; line_uid: string }>`
    update erased_menu_unlink
    set not_before = now() + make_interval(secs => ${leaseSeconds}), tries = tries + 1
    where id = any(${ids}::uuid[]) and (not_before is null or not_before <= now())
    returning id, line_uid`.execute(db)
  return rows
}

/** Done with (LINE confirmed, or nothing to unlink): the LINE user ids are forgotten. */
export async function deleteErasedUnlinks(db: Db, ids: string[]): Promise<void> {
  if (ids.length === 0) return
  await db.deleteFrom('erased_menu_unlink').where('id', 'in', ids).execute()
}

/**
 * LINE did not confirm: tried again after 1 minute, doubling with each try, at most an hour
 * apart. `failure` is LINE's status only.
 */
export async function deferErasedUnlinks(db: Db, ids: string[], failure: string): Promise<void> {
  if (ids.length === 0) return
  await sql`
    update erased_menu_unlink
    set not_before = now() + least(interval '1 minute' * power(2, greatest(tries - 1, 0)),
      interval '1 hour'),
      last_failure = ${failure}
    where id = any(${ids}::uuid[])`.execute(db)
}

/**
 * Rows due: not taken since they were written before `olderThan` (the erasure's own call came
 * before), or whose retry or lease is up.
 */
export async function listDueErasedUnlinks(db: Db, olderThan: Date, limit: number, after?: Keyset) {
  return db
    .selectFrom('erased_menu_unlink')
    .select(['id', sql<string>`created_at::text`.as('at')])
    .where((eb) =>
      eb.or([
        eb.and([eb('not_before', 'is', null), eb('created_at', '<', olderThan)]),
        eb('not_before', '<=', sql<Date>`now()`),
      ]),
    )
    .where(afterKeyset('created_at', after))
    .orderBy('created_at')
    .orderBy('id')
    .limit(limit)
    .execute()
}

/** Drops the rows written before `before` (given up on); returns how many. */
export async function deleteErasedUnlinksBefore(db: Db, before: Date): Promise<number> {
  const result = await db
    .deleteFrom('erased_menu_unlink')
    .where('created_at', '<', before)
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
