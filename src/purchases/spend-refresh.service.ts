import { sql } from 'kysely'
import type { Env } from '../config/env.ts'
import type { Db } from '../platform/db.ts'
import { refreshSpend, retierCustomerBatch } from './purchase.repo.ts'

/**
 * Keeps spend_12m and tier right as time passes: a purchase leaves the 365-day window without
 * any write to the customer. Recomputes the customers who have a purchase that left the window
 * between `since` (null: any time before) and `until` (default now(); both by the database's
 * clock, which purchases age by: run it daily from the sweeper or `kizuna`, with `since` = last
 * run's `until`), `batchSize` customers at a time, read in customer id order.
 * Over large tables this wants an index on purchase(purchased_at) (not there yet); a page of
 * customers is a range of purchase_customer_id_purchased_at_idx.
 */
export async function refreshStaleSpend(
  db: Db,
  env: Pick<Env, 'TIER_THRESHOLDS'>,
  opts: { since: Date | null; until?: Date; batchSize?: number },
): Promise<number> {
  const size = opts.batchSize ?? 1000
  let changed = 0
  let after: string | null = null
  for (;;) {
    const ids = await listAgedOutCustomers(db, { ...opts, after, limit: size })
    changed += await refreshSpend(db, ids, env.TIER_THRESHOLDS)
    const last = ids.at(-1)
    if (ids.length < size || !last) return changed
    after = last
  }
}

/** Up to `limit` customers after `after`, in id order, with a purchase that aged out meanwhile. */
async function listAgedOutCustomers(
  db: Db,
  opts: { since: Date | null; until?: Date; after: string | null; limit: number },
): Promise<string[]> {
  const until = opts.until ? sql`${opts.until}::timestamptz` : sql`now()`
  const { since, after } = opts
  const rows = await db
    .selectFrom('purchase')
    .select('customer_id')
    .distinct()
    .where('customer_id', 'is not', null)
    .$if(after !== null, (qb) => qb.where('customer_id', '>', after))
    .where('purchased_at', '<=', sql<Date>`${until} - interval '365 days'`)
    .$if(since !== null, (qb) =>
      qb.where('purchased_at', '>', sql<Date>`${since}::timestamptz - interval '365 days'`),
    )
    .orderBy('customer_id')
    .limit(opts.limit)
    .execute()
  return rows.flatMap((r) => (r.customer_id ? [r.customer_id] : []))
}

/**
 * Sets every customer's tier from their kept 12-month spend, a batch at a time: after the tier
 * thresholds changed, nobody waits for their next purchase to be re-tiered. Returns how many
 * tiers changed.
 */
export async function retierAllCustomers(
  db: Db,
  env: Pick<Env, 'TIER_THRESHOLDS'>,
  opts: { batchSize?: number } = {},
): Promise<number> {
  let afterId: string | null = null
  let changed = 0
  for (;;) {
    const batch: { lastId: string | null; changed: number } = await retierCustomerBatch(
      db,
      env.TIER_THRESHOLDS,
      afterId,
      opts.batchSize ?? 1000,
    )
    changed += batch.changed
    if (!batch.lastId) return changed
    afterId = batch.lastId
  }
}
