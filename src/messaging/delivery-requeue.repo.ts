import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { outcomeUnknown } from './outcome-unknown.ts'
import { keyMayBeTaken, keyPastSafeAge } from './retry-key.ts'

/** Statuses an operator may send back to the queue (`kizuna deliveries retry`). */
export const RETRYABLE_STATUSES = ['quota_exceeded', 'failed'] as const
export type RetryableStatus = (typeof RETRYABLE_STATUSES)[number]

export type RequeueResult = {
  /** Put back to pending. */
  requeued: number
  /**
   * Left as they are: a request under their key may have reached LINE (a 5xx or timeout, not
   * answered by a refusal of the first request under the key) more than RETRY_KEY_SAFE_HOURS
   * ago, and LINE would take the same key now as a new request.
   */
  keyExpired: number
}

/**
 * Puts parked deliveries back to pending (the month's quota renewed, a template fixed): the
 * sweeper queues them at its next pass. Not for erased customers, nor replies or emails whose
 * outcome is unknown. Each keeps its retry key and the push or chunk request it stored (a fixed
 * template does not change one that may have reached LINE), so a request LINE accepted within
 * the last 24 hours cannot go out twice (LINE answers 409). After that LINE takes the key as
 * new: a delivery whose request may have reached LINE (a LINE call went out under its key and
 * was not clearly refused) more than RETRY_KEY_SAFE_HOURS ago stays as it is and is counted in
 * `keyExpired`; a template failure, or the quota's 429, on a retry after such a call is no
 * exception. Deliveries LINE refused (a 400; a 429 to the first request under the key) go again
 * at any age: their outcome forgot the key's first call (LINE took nothing under it), so its 24
 * hours start with the next request (noted by storePushBodies or createMulticastRequest), and a
 * chunk refused is not sent again (see refusedChunk). Those that never reached a LINE call go
 * again at any age too.
 */
export async function requeueDeliveries(
  db: Db,
  filter: { status: RetryableStatus; kind?: string },
): Promise<RequeueResult> {
  const held = sql<boolean>`${keyMayBeTaken} and ${keyPastSafeAge}`
  const result = await sql<{ requeued: number; key_expired: number }>`
    with candidates as (
      select id, ${held} as held from delivery d
      where status = ${filter.status}
        and (${filter.kind ?? null}::text is null or kind = ${filter.kind ?? null})
        and customer_id in (select id from customer where erased_at is null)
        -- A reply or email whose answer was lost may have arrived: sending it again could send
        -- it twice.
        and not ${outcomeUnknown}
      for update
    ),
    requeued as (
      update delivery d
      set status = 'pending', send_after = least(d.send_after, now()), updated_at = now(),
        -- A fresh set of LINE_RATE_LIMIT_TRIES, whatever failed it.
        rate_limit_tries = 0
      from candidates c
      where d.id = c.id and not c.held
      returning d.id
    )
    select (select count(*) from requeued)::int as requeued,
      (select count(*) from candidates where held)::int as key_expired
  `.execute(db)
  const row = result.rows[0]!
  return { requeued: row.requeued, keyExpired: row.key_expired }
}

/** Whether any delivery, in any status, is of this kind. */
export async function deliveryKindExists(db: Db, kind: string): Promise<boolean> {
  const row = await db
    .selectFrom('delivery')
    .select('id')
    .where('kind', '=', kind)
    .limit(1)
    .executeTakeFirst()
  return row !== undefined
}

/** The kinds with deliveries parked in `status`, most first (at most `limit`). */
export async function countParkedByKind(
  db: Db,
  status: RetryableStatus,
  limit: number,
): Promise<{ kind: string; count: number }[]> {
  const rows = await db
    .selectFrom('delivery')
    .select(['kind', (eb) => eb.fn.countAll<string>().as('count')])
    .where('status', '=', status)
    .groupBy('kind')
    .orderBy('count', 'desc')
    .orderBy('kind')
    .limit(limit)
    .execute()
  return rows.map((r) => ({ kind: r.kind, count: Number(r.count) }))
}
