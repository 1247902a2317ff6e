import type { Processor } from '../platform/worker-types.ts'
import { deleteProcessedWebhookEvents } from '../webhook/webhook.repo.ts'
import { runNightly } from './nightly.service.ts'

const DAY_MS = 86_400_000

/**
 * Daily: processed webhook events older than WEBHOOK_RETENTION_DAYS are deleted. They hold what
 * LINE sent (user ids, message texts) and have served their purpose (LINE redelivers within
 * hours, not weeks); the customer, purchase and delivery rows they led to stay.
 */
export const pruneWebhookEvents: Processor<'maintenance.prune-webhook-events'> = {
  async run(deps) {
    await runNightly(deps.db, 'prune-webhook-events', async () => {
      const days = deps.env.WEBHOOK_RETENTION_DAYS
      if (days === 0) return
      const now = deps.clock.now()
      const olderThan = new Date(now.getTime() - days * DAY_MS)
      const deleted = await deleteProcessedWebhookEvents(deps.db, olderThan, { now })
      deps.log.info({ deleted, days }, 'deleted processed webhook events past retention')
    })
  },
}
