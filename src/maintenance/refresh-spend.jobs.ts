import type { Processor } from '../platform/worker-types.ts'
import { enqueueRelink } from '../richmenu/richmenu-link.service.ts'
import { refreshSpendSinceLastRun } from './refresh-spend.service.ts'

export const refreshSpend: Processor<'maintenance.refresh-spend'> = {
  async run(deps) {
    const result = await refreshSpendSinceLastRun(deps.db, deps.env)
    deps.log.info(
      {
        since: result.since,
        changed: result.changed,
        retiered: result.retiered,
        attached: result.attached,
      },
      'refreshed 12-month spend and tiers',
    )
    if (result.unattached.length > 0) {
      // Tried again by the next run; the refresh itself went on.
      deps.log.warn(
        { unattached: result.unattached.length, first: result.unattached.slice(0, 20) },
        'waiting purchases not attached to customers holding their id',
      )
    }
    // Tiers moved (and anything a lost link job or an import left behind): one relink a day finds
    // every friend whose menu differs, instead of a job per customer.
    await enqueueRelink(deps, `refresh-spend-${deps.clock.now().toISOString().slice(0, 10)}`)
  },
}
