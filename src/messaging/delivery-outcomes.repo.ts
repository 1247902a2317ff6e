import { sql } from 'kysely'
import { ERROR_REMOVED } from '../customers/erase-traces.repo.ts'
import { type Db, inTransaction } from '../platform/db.ts'
import { executePrepared } from '../platform/prepared.ts'
import { type Claim, held } from './delivery-claim.repo.ts'
import { KEY_EXPIRED, LINE_REFUSED } from './retry-key.ts'

/** What became of one claimed delivery. */
export type DeliveryOutcome =
  | { id: string; status: 'sent'; channel: 'line' | 'email'; requestId: string | null }
  | { id: string; status: 'skipped'; reason: string }
  /**
   * `keyUnused`: as for `pending` (a delivery parked after rate-limit 429s, rate-limit-backoff.ts,
   * or by the monthly quota's 429 to the first request under its key; or refused by a 400).
   */
  | { id: string; status: 'failed' | 'quota_exceeded'; error: string; keyUnused?: true }
  /**
   * Try again: now (a retry of the job), at `sendAfter` (quiet hours, the weekly cap), or, when
   * `notStarted` (the job's send window closed before it went), in a job queued at once.
   * `rateLimited`: LINE answered a rate-limit 429 (with its Retry-After, if any) to the call
   * that sent it (`call`: a multicast chunk's id; none, a call for this delivery alone): the
   * send job backs the call's deliveries off together, or parks them (rate-limit-backoff.ts).
   * `keyUnused`: LINE refused the first request under the row's key (a rate-limit 429, or a 400),
   * so it took nothing: the key's first call is forgotten and the request not kept (see keyMayBeTaken).
   * `channelRefused`: LINE refused the channel (401: its access token; 403: its plan or account),
   * as it will every call until an operator fixes it: the send job backs the row off instead of
   * using up its tries (channel-refusal.ts).
   */
  | {
      id: string
      status: 'pending'
      error?: string
      sendAfter?: Date
      notStarted?: true
      rateLimited?: { retryAfterMs: number | null; call?: string }
      channelRefused?: 401 | 403
      keyUnused?: true
    }

/**
 * A delivery whose customer was erased after the claim: not sent (its push, chunk, reply or email
 * names them).
 */
export const erasedOutcome = (id: string): DeliveryOutcome => ({
  id,
  status: 'skipped',
  reason: 'erased',
})

/**
 * Records every outcome of a batch in one statement, on rows still `sending` under `claim` only:
 * a row claimed again since (this job outlived the lease) belongs to the job that took it.
 * Returns the ids written. `retryWithinMs`: how long the job's next try may take to come (its
 * backoff); rows left to it are not the sweeper's until then. A customer erased while the send
 * was under way keeps no error text (an SMTP reply names the address), nor a push kept for a
 * retry (it names them; no retry follows).
 */
export async function recordOutcomes(
  db: Db,
  outcomes: DeliveryOutcome[],
  claim: Claim,
  retryWithinMs = 0,
): Promise<Set<string>> {
  // Rows that may keep an error text or a push: failed or waiting for a retry.
  const mayKeep = outcomes.flatMap((o) =>
    ('error' in o && o.error) || o.status === 'pending' || o.status === 'failed' ? [o.id] : [],
  )
  if (mayKeep.length === 0) return writeOutcomes(db, outcomes, claim, retryWithinMs)
  return inTransaction(db, async (trx) => {
    const written = await writeOutcomes(trx, outcomes, claim, retryWithinMs)
    // Looked for by a statement of its own: one inside the update would see the customers as
    // they were when it began, and an erasure committing while it waited for the rows (the
    // erasure writes every delivery of the person) would get the error text after all.
    await dropErasedTraces(trx, mayKeep)
    return written
  })
}

/** Error texts and pushes kept on these deliveries of erased customers are removed. */
async function dropErasedTraces(db: Db, ids: string[]): Promise<void> {
  if (ids.length === 0) return
  await db
    .updateTable('delivery')
    .set({
      last_error: sql`case when last_error is null then null else ${ERROR_REMOVED}::text end`,
      push_body: null,
    })
    .where('id', 'in', ids)
    .where((eb) =>
      eb.or([
        eb('push_body', 'is not', null),
        eb.and([eb('last_error', 'is not', null), eb('last_error', '<>', ERROR_REMOVED)]),
      ]),
    )
    .where(({ exists, selectFrom }) =>
      exists(
        selectFrom('customer')
          .whereRef('customer.id', '=', 'delivery.customer_id')
          .where('customer.erased_at', 'is not', null),
      ),
    )
    .execute()
}

async function writeOutcomes(
  db: Db,
  outcomes: DeliveryOutcome[],
  claim: Claim,
  retryWithinMs: number,
): Promise<Set<string>> {
  if (outcomes.length === 0) return new Set()
  const col = <T>(pick: (o: DeliveryOutcome) => T | undefined) =>
    outcomes.map((o) => pick(o) ?? null)
  // LINE refused a new request under the key (a 429 or a 400): it took nothing under it, unless
  // it is a chunk's key and another job repeated the chunk meanwhile (this job outlived its lease
  // and that job took one of the chunk's rows over). So the key counts as unused only if every
  // row tagged with the chunk is still `sending` under this claim, read with the rows locked.
  const unused = sql<boolean>`(coalesce(o.key_unused, false)
    and not coalesce(d.multicast_request_id = any(in_doubt.chunks), false))`
  const result = await executePrepared(
    db,
    sql<{ id: string }>`
    with o as (
      select * from unnest(
        ${col((o) => o.id)}::uuid[], ${col((o) => claim.get(o.id))}::int[],
        ${col((o) => o.status)}::text[],
        ${col((o) => ('channel' in o ? o.channel : undefined))}::text[],
        ${col((o) => ('requestId' in o ? o.requestId : undefined))}::text[],
        ${col((o) => ('reason' in o ? o.reason : undefined))}::text[],
        ${col((o) => ('error' in o ? o.error?.slice(0, 2_000) : undefined))}::text[],
        ${col((o) => ('sendAfter' in o ? o.sendAfter?.toISOString() : undefined))}::timestamptz[],
        ${col((o) => ('keyUnused' in o ? o.keyUnused : undefined))}::boolean[]
      ) as o(id, attempts, status, channel, request_id, reason, error, send_after, key_unused)
    ),
    chunk_rows as materialized (
      select x.id, x.multicast_request_id as chunk, x.status, x.attempts from delivery x
      where x.multicast_request_id in (select y.multicast_request_id from delivery y
        join o on o.id = y.id where o.key_unused)
      order by x.id for update of x
    ),
    in_doubt as materialized (
      select coalesce(array_agg(distinct c.chunk), '{}') as chunks
      from chunk_rows c left join o on o.id = c.id
      where c.status <> 'sending' or c.attempts is distinct from o.attempts
    )
    update delivery d set
      status = o.status,
      channel = coalesce(o.channel, d.channel),
      line_request_id = case when o.channel = 'line' then o.request_id else d.line_request_id end,
      email_message_id = case when o.channel = 'email' then o.request_id else d.email_message_id end,
      skip_reason = coalesce(o.reason, d.skip_reason),
      last_error = case when o.status <> 'sent' then coalesce(o.error, d.last_error) end,
      sent_at = case when o.status = 'sent' then now() else d.sent_at end,
      -- Kept while LINE may have taken the push (a 5xx or timeout): its retry, even one that
      -- "deliveries retry" requeues after a failure or the quota's 429, repeats it byte for byte
      -- under the same key. Dropped once sent, skipped, refused (a 400, or a 429 to the first
      -- request under the key: LINE took nothing under it), or past its key's life (it names
      -- the person, and no retry follows).
      push_body = case when not ${unused} and (o.status in ('pending', 'quota_exceeded')
          or (o.status = 'failed' and coalesce(o.error, '') not like ${`${LINE_REFUSED}%`}
            and o.error <> ${KEY_EXPIRED}))
        then d.push_body end,
      line_first_call_at = case when ${unused} then null else d.line_first_call_at end,
      send_after = coalesce(o.send_after, d.send_after),
      retry_at = case when o.status = 'pending' and o.send_after is null
        then now() + make_interval(secs => ${retryWithinMs / 1000}) end,
      updated_at = now()
    from o, in_doubt
    where d.id = o.id and d.status = 'sending' and d.attempts = o.attempts
    returning d.id
  `,
  )
  return new Set(result.rows.map((r) => r.id))
}

/**
 * After the last retry: deliveries the last try's claim left waiting for a retry are failed
 * (only those not claimed again since), keeping their last try's reason when they have one (else
 * the job's error); returns how many.
 */
export async function failUnfinishedDeliveries(
  db: Db,
  left: Claim,
  error: string,
): Promise<number> {
  if (left.size === 0) return 0
  // A push kept for its retry stays (LINE may have taken it): `deliveries retry` repeats it under
  // the same key, never a new rendering; not an erased customer's. The last try's own reason (a
  // refused SMTP login, LINE's 500) says more than the job's.
  return inTransaction(db, async (trx) => {
    const result = await sql<{ id: string }>`
      update delivery d set status = 'failed',
        last_error = coalesce(d.last_error, ${error.slice(0, 2_000)}), updated_at = now()
      from ${held(left, [...left.keys()])}
      where d.id = held.id and d.attempts = held.attempts
        and d.status = 'pending' and d.attempts > 0 and d.send_after <= now()
      returning d.id
    `.execute(trx)
    // An erased customer's keeps neither (see recordOutcomes).
    await dropErasedTraces(
      trx,
      result.rows.map((r) => r.id),
    )
    return result.rows.length
  })
}
