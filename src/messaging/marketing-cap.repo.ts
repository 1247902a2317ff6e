import { sql } from 'kysely'
import { LOCK_SPACES } from '../platform/advisory-locks.ts'
import type { Database } from '../platform/db.ts'
import {
  type ClaimedDelivery,
  claimDeliveries,
  SENDING_LEASE_SECONDS,
} from './delivery-claim.repo.ts'
import { outcomeUnknown } from './outcome-unknown.ts'
import { keyMayBeTaken } from './retry-key.ts'

/**
 * Per customer, when the marketing sends of the rolling week reached (or may have reached) the
 * person, newest first: all of them, or the `cap` most recent when there are more (so a customer
 * has room while there are fewer than `cap`); and `underWay`, how many of their deliveries other
 * jobs are sending that may still send nothing (see claimDeliveriesWithMarketingCounts).
 */
export type RecentMarketing = Map<string, { latest: Date[]; underWay: number }>

/**
 * A row another job holds in `sending` whose request or email has not gone yet (no push stored or
 * chunk tagged, no reply under way, no email marked as trying): that job may still send nothing
 * for it (an opt-out, no channel left, quiet hours, its own cap), or send it.
 */
const undecided = sql<boolean>`(d.status = 'sending' and not ${keyMayBeTaken}
  and d.email_trying_at is null and d.reply_state is distinct from 'trying')`

/**
 * Claims deliveries (see claimDeliveries) and, for their marketing customers, counts the
 * marketing sends of the rolling week. The weekly cap must hold across jobs running at once: the
 * customers are locked (advisory, in id order) before the claim, so a job sees what another
 * claimed first. Rows another job is sending count once their request or email may have gone;
 * before that they are `underWay` (they may yet send nothing: counted as sends, a delivery over
 * the cap was skipped for good though the person got nothing; not counted, two jobs would both
 * see room). Rows whose outcome is unknown count too: waiting for a retry, failed or parked by
 * the quota while their request may have reached LINE, and replies and emails failed as of
 * unknown outcome.
 */
export async function claimDeliveriesWithMarketingCounts(
  db: Database,
  ids: string[],
  cap: number,
  leaseSeconds = SENDING_LEASE_SECONDS,
): Promise<{ rows: ClaimedDelivery[]; recent: RecentMarketing }> {
  if (cap === 0) return { rows: await claimDeliveries(db, ids, leaseSeconds), recent: new Map() }
  return db.transaction().execute(async (trx) => {
    const customers = await sql<{ customer_id: string }>`
      select distinct customer_id from delivery
      where id = any(${ids}::uuid[]) and category = 'marketing' and status in ('pending', 'sending')
      order by customer_id`.execute(trx)
    const customerIds = customers.rows.map((r) => r.customer_id)
    if (customerIds.length === 0)
      return { rows: await claimDeliveries(trx, ids, leaseSeconds), recent: new Map() }
    await sql`select pg_advisory_xact_lock(${LOCK_SPACES.marketingCap}, hashtext(c::text))
      from unnest(${customerIds}::uuid[]) c order by c`.execute(trx)
    const rows = await claimDeliveries(trx, ids, leaseSeconds)
    // When each counted send reached, or may have reached, the person: a row waiting for a
    // retry after a 5xx or timeout counts from its first call (LINE may have delivered it then),
    // a reply or email of unknown outcome from when it failed (its try, moments before).
    const at = sql`coalesce(d.sent_at, d.line_first_call_at,
      case when ${outcomeUnknown} then d.updated_at end, now())`
    // `at` is never null: every counted send is in the array (null if none), cut to the cap's
    // most recent.
    const recent = await sql<{ customer_id: string; latest: Date[] | null; under_way: number }>`
      select customer_id,
        (array_agg(${at} order by ${at} desc) filter (where not ${undecided}))[1:${cap}] as latest,
        (count(*) filter (where ${undecided}))::int as under_way
      from delivery d
      where customer_id = any(${customerIds}::uuid[]) and category = 'marketing'
        -- No branch on status = 'sending' alone: given one, Postgres OR-ed in the partial index
        -- of unfinished rows and read all of it (the whole campaign's pending rows, 50,000
        -- heap rows filtered away per call on a 100k campaign), so only the customer index fits.
        and status in ('sent', 'sending', 'pending', 'failed', 'quota_exceeded')
        -- A pending, failed or parked row counts when its request may have reached LINE: LINE
        -- may have delivered it, and its retry (a parked one's after 'deliveries retry') goes
        -- whatever the cap says (mayHaveReachedLine), so another send must not take its place.
        -- So does a reply or email failed as of unknown outcome: it may have arrived.
        and (status not in ('pending', 'failed', 'quota_exceeded') or ${keyMayBeTaken}
          or ${outcomeUnknown})
        and ${at} > now() - interval '7 days'
        -- Only the rows this claim took (they count in the batch): one the job names that
        -- another job is sending counts here, or both jobs would see room for it.
        and not (status = 'sending' and id = any(${rows.map((r) => r.id)}::uuid[]))
      group by customer_id`.execute(trx)
    return {
      rows,
      recent: new Map(
        recent.rows.map((r) => [r.customer_id, { latest: r.latest ?? [], underWay: r.under_way }]),
      ),
    }
  })
}
