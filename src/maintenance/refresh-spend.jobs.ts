import type { Processor } from '../platform/worker-types.ts'
import { refreshStaleSpend } from '../purchases/purchase.service.ts'

/** Purchases that left the 12-month window since the last run (two days, to cover a miss). */
const LOOKBACK_MS = 2 * 86_400_000

export const refreshSpend: Processor<'maintenance.refresh-spend'> = {
  async run(deps) {
    const since = new Date(deps.clock.now().getTime() - LOOKBACK_MS)
    const changed = await refreshStaleSpend(deps.db, deps.env, { since })
    deps.log.info({ changed }, 'refreshed 12-month spend and tiers')
  },
}
