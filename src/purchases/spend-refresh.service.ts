import { sql } from 'kysely'
import type { Env } from '../config/env.ts'
import type { Db } from '../platform/db.ts'
import { refreshSpend, retierCustomerBatch } from './purchase.repo.ts'

/**
 * Keeps spend_12m and tier right as time passes: a purchase leaves the 365-day window without
 * any write to the customer. Recomputes the customers who have a purchase that left the window
 * between `since` and `until` (default now(); both by the database's clock, which purchases age
 * by: run it daily from the sweeper or `kizuna`, with `since` = last run's `until`).
 * Over large tables this wants an index on purchase(purchased_at) (not there yet).
 */
export async function refreshStaleSpend(
  db: Db,
  env: Pick<Env, 'TIER_THRESHOLDS'>,
  opts: { since: Date; until?: Date; batchSize?: number },
): Promise<number> {
  const until = opts.until ? sql`${opts.until}::timestamptz` : sql`now()`
  const rows = await db
    .selectFrom('purchase')
    .select('customer_id')
    .distinct()
    .where('customer_id', 'is not', null)
    .where('purchased_at', '<=', sql<Date>`${until} - interval '365 days'`)
    .where('purchased_at', '>', sql<Date>`${opts.since}::timestamptz - interval '365 days'`)
    .execute()
  const ids = rows.flatMap((r) => (r.customer_id ? [r.customer_id] : []))
  const size = opts.batchSize ?? 1000
  let changed = 0
  for (let i = 0; i < ids.length; i += size) {
    changed += await refreshSpend(db, ids.slice(i, i + size), env.TIER_THRESHOLDS)
  }
  return changed
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
