import type { webhook } from '@line/bot-sdk'
import { UnrecoverableError } from 'bullmq'
import type { Processor } from '../platform/worker-types.ts'
import { dispatchEvent } from './dispatch.ts'
import type { EventOutcome } from './event-context.ts'
import { lockWebhookEvent, markWebhookEventDone, markWebhookEventFailed } from './webhook.repo.ts'

/**
 * Processes one stored event at most once: the row is locked, its effects and the `done` mark
 * commit together, and work for other queues is enqueued only after that commit.
 */
export const processWebhookEvent: Processor<'webhook.process-event'> = {
  async run(deps, { webhookEventId }) {
    const afterCommit: (() => Promise<void>)[] = []
    const result = await deps.db.transaction().execute(async (trx) => {
      const row = await lockWebhookEvent(trx, webhookEventId)
      if (!row) throw new UnrecoverableError('webhook event row not found')
      if (row.status !== 'pending') return null
      const event = row.payload as unknown as webhook.Event
      const outcome: EventOutcome = await dispatchEvent(
        {
          deps,
          trx,
          webhookEventId,
          receivedAt: row.received_at,
          standby: row.mode === 'standby',
          afterCommit: (fn) => afterCommit.push(fn),
        },
        event,
      )
      await markWebhookEventDone(trx, row.id, outcome)
      return { type: row.type, outcome }
    })
    if (!result) return
    deps.metrics.webhookEvents.inc({ type: result.type, outcome: result.outcome })
    for (const fn of afterCommit) await fn()
  },
  async onFinalFailure(deps, { webhookEventId }, error) {
    await markWebhookEventFailed(deps.db, webhookEventId, error.message, true)
  },
}
