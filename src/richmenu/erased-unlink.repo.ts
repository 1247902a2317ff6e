import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { afterKeyset, type Keyset } from '../platform/keyset.ts'

/**
 * Records, in the erasure's transaction, that the menus of these LINE user ids (the ones it
 * replaced with tombstones) are to be unlinked at LINE once it committed: after the commit no
 * other row names them, and a process that dies before its call, or a LINE that refuses it,
 * would leave the person's segment menu shown for good. Returns the rows' ids, for
 * unlinkErasedMenus (erased-unlink.service.ts); the sweeper queues whatever is left. A LINE
 * user id waiting already (erased, back as a friend, erased again; a link that landed after the
 * unlink under way) keeps its row, owed again: counted from now, due at once (a round holding it
 * loses it, its retries start over), under a new generation, so that a round that claimed it
 * before neither deletes nor defers it (its call may have come before what is owed now).
 */
export async function insertErasedUnlinks(db: Db, lineUids: string[]): Promise<string[]> {
  if (lineUids.length === 0) return []
  const { rows } = await sql<{ id: string }>`
    insert into erased_menu_unlink (line_uid) select unnest(${[...new Set(lineUids)]}::text[])
    on conflict (line_uid) do update set created_at = excluded.created_at,
      generation = erased_menu_unlink.generation + 1, not_before = null, tries = 0
    returning id`.execute(db)
  return rows.map((r) => r.id)
}

/** A row a round took: done with (or deferred) only while no one owed it again. */
export type ClaimedUnlink = { id: string; line_uid: string; generation: number }

/**
 * Takes these rows for an unlink call (a lease of `leaseSeconds`): those due, that no one else
 * holds and no retry waits for. Returns what it took, with the LINE user ids and generations.
 */
export async function claimErasedUnlinks(
  db: Db,
  ids: string[],
  leaseSeconds: number,
): Promise<ClaimedUnlink[]> {
  if (ids.length === 0) return []
  const { rows } = await sql<ClaimedUnlink>`
    update erased_menu_unlink
    set not_before = now() + make_interval(secs => ${leaseSeconds}), tries = tries + 1
    where id = any(${ids}::uuid[]) and (not_before is null or not_before <= now())
    returning id, line_uid, generation`.execute(db)
  return rows
}

/** The rows of these claims still at the generation claimed. */
const stillClaimed = (claims: ClaimedUnlink[]) =>
  sql`(id, generation) in (select * from unnest(${claims.map((c) => c.id)}::uuid[],
    ${claims.map((c) => c.generation)}::int4[]))`

/**
 * Done with (LINE confirmed, or refused the id): the LINE user ids are forgotten, unless owed
 * again since the claim.
 */
export async function deleteErasedUnlinks(db: Db, claims: ClaimedUnlink[]): Promise<void> {
  if (claims.length === 0) return
  await sql`delete from erased_menu_unlink where ${stillClaimed(claims)}`.execute(db)
}

/**
 * LINE did not confirm: tried again after 1 minute, doubling with each try, at most an hour
 * apart (a row owed again since the claim is due at once, and stays so). `failure` is LINE's
 * status only.
 */
export async function deferErasedUnlinks(
  db: Db,
  claims: ClaimedUnlink[],
  failure: string,
): Promise<void> {
  if (claims.length === 0) return
  await sql`
    update erased_menu_unlink
    set not_before = now() + least(interval '1 minute' * power(2, greatest(tries - 1, 0)),
      interval '1 hour'),
      last_failure = ${failure}
    where ${stillClaimed(claims)}`.execute(db)
}

/**
 * Rows due: not taken since they were written before `olderThan` (the erasure's own call came
 * before), or whose retry or lease is up. With their state (generation, tries), which every
 * claim and every debt owed again changes.
 */
export async function listDueErasedUnlinks(db: Db, olderThan: Date, limit: number, after?: Keyset) {
  return db
    .selectFrom('erased_menu_unlink')
    .select(['id', 'generation', 'tries', sql<string>`created_at::text`.as('at')])
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
