import { forgetOldChunkBodies } from '../messaging/chunk-deliveries.repo.ts'
import type { Processor } from '../platform/worker-types.ts'
import { runNightly } from './nightly.service.ts'

/**
 * Nightly: multicast chunks over a day old lose their stored request (the friends' user ids it
 * names); nothing repeats it past its retry key's 24 hours. Running it again changes nothing.
 */
export const forgetChunkBodies: Processor<'maintenance.forget-chunk-bodies'> = {
  async run(deps) {
    const forgotten = await runNightly(deps.db, 'forget-chunk-bodies', () =>
      forgetOldChunkBodies(deps.db),
    )
    deps.log.info({ forgotten }, 'dropped the stored requests of day-old multicast chunks')
  },
}
