import type { Processor } from '../platform/worker-types.ts'
import { refreshSpendSinceLastRun } from './refresh-spend.service.ts'

export const refreshSpend: Processor<'maintenance.refresh-spend'> = {
  async run(deps) {
    const result = await refreshSpendSinceLastRun(deps.db, deps.env, { now: deps.clock.now() })
    deps.log.info(
      { since: result.since, changed: result.changed, retiered: result.retiered },
      'refreshed 12-month spend and tiers',
    )
  },
}
