import { sql } from 'kysely'
import { lockInSpace } from '../platform/advisory-locks.ts'
import type { Db } from '../platform/db.ts'
import { afterKeyset, type Keyset } from '../platform/keyset.ts'

export type LineStatus = 'friend' | 'blocked'

/**
 * profile_fetched_at as a row turns friend: forgotten when it was blocked. LINE answers 404 to
 * a blocker's profile, saved as fetched with nothing; forgotten, the profile is fetched again by
 * the welcome card (findProfilelessFriendOf) or the sweeper (listLineUsersWithoutProfile), not
 * only by the job the unblock queues (which may fail every attempt, or never be queued). A follow
 * LINE says ends a block forgets it whatever the row's status (updateLineUserStatusIfNewer).
 */
const backFromBlock = sql<Date | null>`case when status = 'blocked' then null else profile_fetched_at end`

/** Serialises every change to one LINE user inside the caller's transaction. */
export async function lockLineUid(trx: Db, lineUid: string): Promise<void> {
  await lockInSpace(trx, 'lineUser', lineUid)
}

export async function findLineUserByUid(db: Db, lineUid: string) {
  return db.selectFrom('line_user').selectAll().where('line_uid', '=', lineUid).executeTakeFirst()
}

export async function findLineUserById(db: Db, id: string) {
  return db.selectFrom('line_user').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function insertLineUser(
  db: Db,
  values: {
    customerId: string
    lineUid: string
    status: LineStatus
    at: Date
    /** A friend's follow time when it is not `at` (unknown: first met through a message). */
    followedAt?: Date
  },
) {
  await db
    .insertInto('identity')
    .values({ customer_id: values.customerId, kind: 'line', value: values.lineUid })
    .execute()
  return db
    .insertInto('line_user')
    .values({
      customer_id: values.customerId,
      line_uid: values.lineUid,
      status: values.status,
      status_changed_at: values.at,
      followed_at: values.status === 'friend' ? (values.followedAt ?? values.at) : null,
      blocked_at: values.status === 'blocked' ? values.at : null,
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

/**
 * Last writer wins by event time: an older event never overwrites a newer status. A follow and
 * an unfollow with the same timestamp cannot be ordered (LINE's event ids are not), so on a tie
 * `blocked` wins whichever arrives first: the same state for both orders, and the safe one (no
 * messages to someone who may have blocked us). A follow ending a block forgets the profile
 * fetch (backFromBlock), and so does one LINE flags `unblocked`: the block may be one the row
 * never recorded (its unfollow arrives after this follow, and is stale then), and a 404 saved
 * during it, kept with the row a friend, would keep the welcome card and the sweeper from asking.
 */
export async function updateLineUserStatusIfNewer(
  db: Db,
  id: string,
  status: LineStatus,
  at: Date,
  opts: { unblocked?: boolean } = {},
): Promise<boolean> {
  const result = await db
    .updateTable('line_user')
    .set({
      status,
      status_changed_at: at,
      ...(status === 'friend'
        ? { followed_at: at, profile_fetched_at: opts.unblocked ? null : backFromBlock }
        : { blocked_at: at }),
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .where((eb) =>
      status === 'blocked'
        ? eb.or([
            eb('status_changed_at', '<', at),
            eb.and([eb('status_changed_at', '=', at), eb('status', '=', 'friend')]),
          ])
        : eb('status_changed_at', '<', at),
    )
    .executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}

/**
 * A blocked LINE user who has talked to us since: a friend as of `at`, their follow time left as
 * it was (only a follow event sets it), their profile fetch forgotten (backFromBlock). Returns
 * the row.
 */
export async function markLineUserBack(db: Db, id: string, at: Date) {
  return db
    .updateTable('line_user')
    .set({
      status: 'friend',
      status_changed_at: at,
      profile_fetched_at: null,
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow()
}

/**
 * Saves a profile fetched for `lineUser` while the row still holds the LINE user id it was
 * fetched for: an erasure that committed during the call replaced that id with a tombstone and
 * nothing is written. None to give (`null`, LINE's 404) is saved only while the row's status is
 * as it was when asked: an unblock committed during the call makes the 404 one from before it,
 * and saved as a fetch now, the unblock's own fetch would take it for its answer and not ask.
 * Returns the row's customer now (undefined when nothing was written).
 */
export async function saveLineProfile(
  db: Db,
  lineUser: { id: string; line_uid: string; status_changed_at: Date },
  profile: { displayName?: string; language?: string; pictureUrl?: string } | null,
): Promise<string | undefined> {
  const row = await db
    .updateTable('line_user')
    .set({
      ...(profile
        ? {
            display_name: profile.displayName ?? null,
            language: profile.language ?? null,
            picture_url: profile.pictureUrl ?? null,
          }
        : {}),
      profile_fetched_at: sql`now()`,
      updated_at: sql`now()`,
    })
    .where('id', '=', lineUser.id)
    .where('line_uid', '=', lineUser.line_uid)
    .$if(profile === null, (qb) => qb.where('status_changed_at', '=', lineUser.status_changed_at))
    .returning('customer_id')
    .executeTakeFirst()
  return row?.customer_id
}

/**
 * Names a customer who has no name, unless erased or merged away (their data is cleared), marked
 * as LINE's: a name the shop gives outranks it in a merge (mergeCustomers).
 */
export async function fillCustomerName(db: Db, customerId: string, name: string): Promise<void> {
  await db
    .updateTable('customer')
    .set({ display_name: name, display_name_from_line: true, updated_at: sql`now()` })
    .where('id', '=', customerId)
    .where('display_name', 'is', null)
    .where('erased_at', 'is', null)
    .where('merged_into_id', 'is', null)
    .execute()
}

/**
 * Friends whose profile was never fetched (or not since they came back from a block), added
 * before `olderThan`, from after the row `after`
 * (the last of the page before): each page is a range of line_user_profileless_idx (which holds
 * the blocked too: a status in its condition would cost every status change its HOT update),
 * and none is read twice.
 */
export async function listLineUsersWithoutProfile(
  db: Db,
  olderThan: Date,
  limit: number,
  after?: Keyset,
) {
  return db
    .selectFrom('line_user')
    .select(['id', sql<string>`created_at::text`.as('at')])
    .where('profile_fetched_at', 'is', null)
    .where('status', '=', 'friend')
    .where('created_at', '<', olderThan)
    .where(afterKeyset('created_at', after))
    .orderBy('created_at')
    .orderBy('id')
    .limit(limit)
    .execute()
}

/**
 * The customer's LINE friend whose profile was never fetched, or not since they came back from a
 * block (none once it was, or if blocked).
 */
export async function findProfilelessFriendOf(db: Db, customerId: string) {
  return db
    .selectFrom('line_user')
    .select(['id', 'line_uid', 'customer_id', 'status_changed_at'])
    .where('customer_id', '=', customerId)
    .where('profile_fetched_at', 'is', null)
    .where('status', '=', 'friend')
    .executeTakeFirst()
}
