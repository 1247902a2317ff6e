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
    // Tiers moved (and anything a lost link job or an import left behind): one relink a run finds
    // every friend whose menu differs, instead of a job per customer. A run is known by when it
    // started: a UTC date was shared by a run held up past 09:00 in Tokyo and the next night's
    // (04:15 there is 19:15 UTC the day before), and BullMQ dropped the second relink.
    await enqueueRelink(deps, `refresh-spend-${result.until.getTime()}`)
  },
}
