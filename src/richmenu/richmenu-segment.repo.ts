import { type NotNull, type RawBuilder, sql } from 'kysely'
import { ERASED_PATTERN } from '../identity/tombstone.ts'
import { activeLinkOf } from '../linking/link.repo.ts'
import type { Db } from '../platform/db.ts'

/** A LINE user, the menu version Kizuna last linked to them, and the one they should have. */
export type WantedMenu = {
  id: string
  line_uid: string
  /** 'friend' or 'blocked'; nothing is linked to the blocked (nor asked about the erased). */
  status: string
  linked_version_id: string | null
  /** How many times the record was written (line_user.richmenu_generation): what a record checks. */
  generation: number
  /** null: no segment that fits them has a live menu; the channel's default applies. */
  wanted_version_id: string | null
  wanted_rich_menu_id: string | null
}

/**
 * The live menu version of each segment (deployed, not retired, created on LINE). While a deploy
 * replaces a menu, two versions may be live for a segment for a moment: the newest one wins.
 * Materialized (a few rows): wantedMenuJoin reads it once per LINE user.
 */
const liveMenus = sql`select distinct on (seg) seg, v.id, v.line_rich_menu_id
  from richmenu_version v cross join lateral unnest(v.segments) as seg
  where v.deployed_at is not null and v.retired_at is null and v.line_rich_menu_id is not null
  order by seg, v.deployed_at desc, v.id`

/**
 * `wanted`: the live menu of the first segment (richmenu.schemas.ts SEGMENTS, in order) that
 * fits the surviving customer `s` and has a live menu, with `online` from survivorJoin; no row
 * when none has (the channel's default applies). A vip whose menu folder was removed gets the
 * menu of the next segment that fits (linked, member), not the default (the new-friend menu).
 * `topTier` null: no tiers configured, nobody is vip.
 */
function wantedMenuJoin(topTier: string | null): RawBuilder<unknown> {
  return sql`left join lateral (
    select live.id, live.line_rich_menu_id
    from (values (1, 'vip', s.tier = ${topTier}::text), (2, 'linked', online.yes),
      (3, 'member', s.purchase_count > 0), (4, 'new_friend', true)) as fits(rank, seg, yes)
    join live on live.seg = fits.seg
    where fits.yes
    order by fits.rank
    limit 1
  ) wanted on true`
}

/**
 * `lu` joined to the customer holding its data now, and whether the LINE account is linked to
 * an online account (`online.yes`: its active account link, activeLinkOf, the definition the
 * help and the unlink read too). mergeCustomers moves line_user rows to the survivor and
 * re-points earlier merges straight at it, so one hop always reaches it. The link is looked up
 * per LINE user (account_link_line_user_id_key), in a lateral with a limit so that Postgres does
 * not hash every active link of the table for each page as it would for an EXISTS.
 */
function survivorJoin(db: Db): RawBuilder<unknown> {
  const linked = activeLinkOf(db, sql.ref<string>('lu.id')).select(sql<boolean>`true`.as('yes'))
  return sql`join customer c on c.id = lu.customer_id
  join customer s on s.id = coalesce(c.merged_into_id, c.id)
  left join lateral (${linked.limit(1)}) online on true`
}

/**
 * The wanted menu version of each of these LINE users (or of these customers' LINE users), in
 * one statement. Users of an erased customer are left out (nothing is linked to them, nothing
 * about them is read).
 */
export async function findWantedMenus(
  db: Db,
  of: { lineUserIds: string[] } | { customerIds: string[] },
  topTier: string | null,
): Promise<WantedMenu[]> {
  const ids = 'lineUserIds' in of ? of.lineUserIds : of.customerIds
  if (ids.length === 0) return []
  const which = 'lineUserIds' in of ? sql`lu.id` : sql`lu.customer_id`
  const { rows } = await sql<WantedMenu>`
    with live as materialized (${liveMenus})
    select lu.id, lu.line_uid, lu.status, lu.richmenu_version_id as linked_version_id,
      lu.richmenu_generation as generation,
      wanted.id as wanted_version_id, wanted.line_rich_menu_id as wanted_rich_menu_id
    from line_user lu ${survivorJoin(db)}
    ${wantedMenuJoin(topTier)}
    where ${which} = any(${ids}::uuid[]) and s.erased_at is null
    order by lu.id`.execute(db)
  return rows
}

/** How many LINE users a relink page looks at, at most: one short statement per page. */
export const RELINK_SCAN_WINDOW = 5_000

export type MismatchPage = {
  /** Friends whose linked version differs from the wanted one (at most `limit`), by id. */
  rows: WantedMenu[]
  /** Where the next page starts (keyset on line_user.id); null: the end of the table. */
  nextAfterId: string | null
}

/**
 * One page of friends (after `afterId`, in id order) whose linked menu version is not the wanted
 * one. Looks at the next RELINK_SCAN_WINDOW line users at most (the primary key's index, then
 * index lookups per row), so a page costs the same however few mismatches there are: ~110 ms
 * for 5,000 on a seeded table of 1M customers and LINE users (EXPLAIN ANALYZE), ~20 s for a
 * relink that finds nothing. The window's rows are read once: joined back to line_user, the
 * planner merge-joined from the start of the table (1 s a page in the middle of it).
 */
export async function findMismatchedFriends(
  db: Db,
  opts: { afterId: string | null; limit: number; topTier: string | null; window?: number },
): Promise<MismatchPage> {
  const { rows } = await sql<WantedMenu & { scanned_to: string | null; found: boolean }>`
    with live as materialized (${liveMenus}),
    win as (
      select id, customer_id, line_uid, status, richmenu_version_id, richmenu_generation
      from line_user
      where ${opts.afterId}::uuid is null or id > ${opts.afterId}::uuid
      order by id limit ${opts.window ?? RELINK_SCAN_WINDOW}
    ),
    m as (
      select lu.id, lu.line_uid, lu.status, lu.richmenu_version_id as linked_version_id,
        lu.richmenu_generation as generation,
        wanted.id as wanted_version_id, wanted.line_rich_menu_id as wanted_rich_menu_id
      from win lu ${survivorJoin(db)}
      ${wantedMenuJoin(opts.topTier)}
      where lu.status = 'friend' and s.erased_at is null
        and wanted.id is distinct from lu.richmenu_version_id
      order by lu.id limit ${opts.limit}
    )
    select (select id from win order by id desc limit 1) as scanned_to, m.id is not null as found, m.*
    from (select 1) one left join m on true
    order by m.id`.execute(db)
  const found = rows.filter((r) => r.found).map(({ scanned_to: _s, found: _f, ...row }) => row)
  const scannedTo = rows[0]?.scanned_to ?? null
  // A full page may have stopped inside the window: go on after its last row.
  const nextAfterId = found.length >= opts.limit ? (found.at(-1)?.id ?? null) : scannedTo
  return { rows: found, nextAfterId }
}

/** A menu record's next generation (richmenu_generation): every record and forget writes it. */
const nextGeneration = sql<number>`richmenu_generation + 1`

/**
 * What forgetting a LINE user's menu record sets (every forget: an unblock, a check, a deploy's,
 * an erasure): no menu, and the generation counted up even where nothing was recorded, so that
 * a link call already under way (read before) does not record over it.
 */
export const forgottenMenu = {
  richmenu_version_id: null,
  richmenu_linked_at: null,
  richmenu_generation: nextGeneration,
}

/**
 * Records what LINE accepted: these users now have `versionId` (null: the default menu). Returns
 * those it did not record (raced): forgotten, for the caller to link again.
 */
export async function recordLinkedMenus(
  db: Db,
  users: Pick<WantedMenu, 'id' | 'linked_version_id' | 'generation'>[],
  versionId: string | null,
): Promise<string[]> {
  if (users.length === 0) return []
  // Only rows still as they were read (the record's generation: every record and forget counts
  // it up, nextGeneration): another job that linked one of them meanwhile may have reached LINE
  // before or after this call, an unblock forgot what LINE dropped, an erasure the person, so
  // what LINE shows is unknown. Those are forgotten (the caller links them again) and returned;
  // an erased person's link finds nothing to link (findWantedMenus), and the caller unlinks at
  // LINE what its call showed them (findErasedLineUsers).
  // Only on a version still live, too: a deploy that retired it meanwhile deletes it at LINE
  // once nobody is recorded on it (listRetiredOnLine), so a record after that would name a menu
  // LINE no longer has. The version's row is share-locked: a retirement under way is waited
  // for, and one that comes after sees this record (the menu then waits for a relink).
  const { rows } = await sql<{ id: string }>`
    with live as (
      select id from richmenu_version
      where id = ${versionId}::uuid and deployed_at is not null and retired_at is null
        and line_rich_menu_id is not null
      for share
    )
    update line_user lu
    set richmenu_version_id = ${versionId}::uuid, richmenu_linked_at = now(),
      richmenu_generation = ${nextGeneration}, updated_at = now()
    from unnest(${users.map((u) => u.id)}::uuid[], ${users.map((u) => u.linked_version_id)}::uuid[],
      ${users.map((u) => u.generation)}::int4[]) as e(id, version_id, generation)
    where lu.id = e.id and lu.richmenu_version_id is not distinct from e.version_id
      and lu.richmenu_generation = e.generation
      and (${versionId}::uuid is null or exists (select 1 from live))
    returning lu.id`.execute(db)
  const recorded = new Set(rows.map((r) => r.id))
  const raced = users.map((u) => u.id).filter((id) => !recorded.has(id))
  await forgetLinkedMenus(db, raced)
  return raced
}

/** Those of these LINE users erased (their row holds a tombstone, not the LINE user id). */
export async function findErasedLineUsers(db: Db, lineUserIds: string[]): Promise<string[]> {
  if (lineUserIds.length === 0) return []
  const rows = await db
    .selectFrom('line_user')
    .select('id')
    .where('id', 'in', lineUserIds)
    .where('line_uid', 'like', ERASED_PATTERN)
    .execute()
  return rows.map((r) => r.id)
}

/**
 * Forgets the menu recorded for the LINE users holding these LINE user ids (live rows: an erased
 * row holds a tombstone), the generation counted up, so that a link under way does not record
 * over it; returns their ids.
 */
export async function forgetMenusOfLineUids(db: Db, lineUids: string[]): Promise<string[]> {
  if (lineUids.length === 0) return []
  const rows = await db
    .updateTable('line_user')
    .set(forgottenMenu)
    .where('line_uid', 'in', lineUids)
    .returning('id')
    .execute()
  return rows.map((r) => r.id)
}

/** Forgets the menu recorded for these LINE users: the next link sends theirs again. */
export async function forgetLinkedMenus(db: Db, lineUserIds: string[]): Promise<void> {
  if (lineUserIds.length === 0) return
  await db.updateTable('line_user').set(forgottenMenu).where('id', 'in', lineUserIds).execute()
}

/** A LINE user recorded on a menu version, and that version's menu at LINE. */
export type RecordedMenu = {
  id: string
  line_uid: string
  generation: number
  line_rich_menu_id: string
}

/**
 * Those of these LINE users still recorded on `versionId` (friends; the version still on LINE):
 * what a check of the bulk link that recorded them asks LINE about.
 */
export async function findRecordedOn(
  db: Db,
  lineUserIds: string[],
  versionId: string,
): Promise<RecordedMenu[]> {
  if (lineUserIds.length === 0) return []
  return db
    .selectFrom('line_user as lu')
    .innerJoin('richmenu_version as v', 'v.id', 'lu.richmenu_version_id')
    .select(['lu.id', 'lu.line_uid', 'lu.richmenu_generation as generation', 'v.line_rich_menu_id'])
    .where('lu.id', 'in', lineUserIds)
    .where('lu.richmenu_version_id', '=', versionId)
    .where('lu.status', '=', 'friend')
    .where('v.line_rich_menu_id', 'is not', null)
    .$narrowType<{ line_rich_menu_id: NotNull }>()
    .orderBy('lu.id')
    .execute()
}

/**
 * Forgets the menu recorded for these LINE users where the record is still the generation read
 * (not written since: another link's record is that link's own); returns whom it forgot.
 */
export async function forgetUnchangedMenus(
  db: Db,
  users: Pick<RecordedMenu, 'id' | 'generation'>[],
): Promise<string[]> {
  if (users.length === 0) return []
  const rows = await db
    .updateTable('line_user as lu')
    .set(forgottenMenu)
    .from(
      sql<{ id: string; generation: number }>`unnest(${users.map((u) => u.id)}::uuid[],
        ${users.map((u) => u.generation)}::int4[])`.as<'e'>(sql`e(id, generation)`),
    )
    .whereRef('lu.id', '=', 'e.id')
    .whereRef('lu.richmenu_generation', '=', 'e.generation')
    .returning('lu.id')
    .execute()
  return rows.map((r) => r.id).sort()
}

/**
 * The LINE users of a customer whose LINE user id is still known (an erased row holds a
 * tombstone): what an erasure unlinks at LINE first. Those without a recorded menu too: a
 * record is forgotten on purpose (a tab menu LINE lost, so the relink moves its people) while
 * LINE may still show a menu.
 */
export async function findLineUsersOfCustomer(
  db: Db,
  customerId: string,
): Promise<{ id: string; line_uid: string }[]> {
  return db
    .selectFrom('line_user')
    .select(['id', 'line_uid'])
    .where('customer_id', '=', customerId)
    .where('line_uid', 'not like', ERASED_PATTERN)
    .orderBy('id')
    .execute()
}
