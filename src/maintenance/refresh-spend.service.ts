import type { Env } from '../config/env.ts'
import type { Db } from '../platform/db.ts'
import type { PurchaseEnv } from '../purchases/purchase.service.ts'
import { refreshStaleSpend, retierAllCustomers } from '../purchases/spend-refresh.service.ts'
import { attachStrandedPurchases } from '../purchases/stranded-purchases.service.ts'
import {
  findMaintenanceRun,
  readDatabaseNow,
  recordMaintenanceRun,
} from './maintenance-run.repo.ts'

const RUN = 'refresh-spend'

export type SpendRefresh = {
  /** Where the window started: null on the first run, which covers all time. */
  since: Date | null
  /** When the run started, by the database's clock: the next run's `since`. */
  until: Date
  changed: number
  retiered: number | null
  /** Purchases that waited for an identity their customer already held (attachStrandedPurchases). */
  attached: number
  /** Identities whose waiting purchases could not be attached: tried again by the next run. */
  unattached: { customerId: string; kind: string; message: string }[]
}

/**
 * The nightly 12-month spend refresh, from where the last successful run started: nights missed
 * (workers down, the job failing) are caught up, not skipped. The first run (none recorded) covers
 * all time: purchases imported with their history may have aged out long before, and later runs
 * only look at what aged since. When the tier thresholds differ
 * from the last run's, every customer is re-tiered. `since` (the CLI) can only start the window
 * earlier: the run is recorded as the last success, so the next run starts at its end, and a
 * window starting after the last success would leave the purchases that aged out in between
 * unseen for good (their customers kept a stale spend and tier). Starting earlier only recomputes
 * some customers again, which changes nothing for them.
 * First, purchases left waiting by a race with their identity are attached. Those that cannot be
 * (reported in `unattached`) stop neither the refresh nor its record: every run looks at all
 * waiting purchases again, and attaching them later recomputes their customer's spend from
 * their purchases, so recording the run loses nothing. Every time is the database's, read once
 * at the start (purchases age by now() in SQL): with the app's clock ahead, a window ending at
 * the database's now but recorded at the app's skipped what aged in between.
 */
export async function refreshSpendSinceLastRun(
  db: Db,
  env: Pick<Env, 'TIER_THRESHOLDS'> & PurchaseEnv,
  opts: { since?: Date } = {},
): Promise<SpendRefresh> {
  const until = await readDatabaseNow(db)
  const last = await findMaintenanceRun(db, RUN)
  const usual = last?.last_success_at ?? null
  const since = usual && opts.since && opts.since < usual ? opts.since : usual
  const thresholds = thresholdsKey(env.TIER_THRESHOLDS)
  const previous = (last?.state as { thresholds?: string } | undefined)?.thresholds
  const stranded = await attachStrandedPurchases(db, env)
  const changed = await refreshStaleSpend(db, env, { since, until })
  const retiered = previous === thresholds ? null : await retierAllCustomers(db, env)
  await recordMaintenanceRun(db, RUN, until, { thresholds })
  const unattached = stranded.failed.map((f) => ({
    customerId: f.customerId,
    kind: f.kind,
    message: f.error instanceof Error ? f.error.message : String(f.error),
  }))
  return { since, until, changed, retiered, attached: stranded.attached, unattached }
}

function thresholdsKey(thresholds: Env['TIER_THRESHOLDS']): string {
  return [...thresholds]
    .sort((a, b) => a.minSpend - b.minSpend)
    .map((t) => `${t.tier}:${t.minSpend}`)
    .join(',')
}
