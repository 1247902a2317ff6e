import { purgeExpiredLinkRows } from '../linking/link.repo.ts'
import type { Processor } from '../platform/worker-types.ts'
import { runNightly } from './nightly.service.ts'

/**
 * Nightly: account-link rows a day past expiry lose what names the person (codes and link
 * tokens are deleted, nonces drop their email or shop account id). Asking for a code purged
 * them before, which a run with the shop's own login, or a quiet one, never did. Running it
 * again changes nothing more.
 */
export const purgeLinkRows: Processor<'maintenance.purge-link-rows'> = {
  async run(deps) {
    const purged = await runNightly(deps.db, 'purge-link-rows', () =>
      purgeExpiredLinkRows(deps.db, deps.clock.now()),
    )
    deps.log.info(purged, 'purged expired account-link rows')
  },
}
