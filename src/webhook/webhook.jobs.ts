import type { webhook } from '@line/bot-sdk'
import type { Deps } from '../platform/deps.ts'
import type { Processor } from '../platform/worker-types.ts'
import { dispatchEvent } from './dispatch.ts'
import type { EventOutcome } from './event-context.ts'
import { lockWebhookEvent, markWebhookEventDone, markWebhookEventFailed } from './webhook.repo.ts'

/** Events of one job processed side by side (each in its own transaction). */
const PARALLEL_EVENTS = 4

/**
 * Processes a group of stored events, each at most once: its row is locked, its effects and the
 * `done` mark commit together, and work for other queues is enqueued only after that commit.
 * If any event fails the job is retried; events already done are skipped on the retry.
 */
export const processWebhookEvents: Processor<'webhook.process-events'> = {
  async run(deps, { webhookEventIds }) {
    const errors: unknown[] = []
    for (let i = 0; i < webhookEventIds.length; i += PARALLEL_EVENTS) {
      const slice = webhookEventIds.slice(i, i + PARALLEL_EVENTS)
      const results = await Promise.allSettled(slice.map((id) => processWebhookEvent(deps, id)))
      for (const r of results) if (r.status === 'rejected') errors.push(r.reason)
    }
    if (errors.length === 1) throw errors[0]
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} events failed`)
  },
  async onFinalFailure(deps, { webhookEventIds }, error) {
    for (const id of webhookEventIds) await markWebhookEventFailed(deps.db, id, error.message)
  },
}

export async function processWebhookEvent(deps: Deps, webhookEventId: string): Promise<void> {
  const afterCommit: (() => Promise<void>)[] = []
  const result = await deps.db.transaction().execute(async (trx) => {
    const row = await lockWebhookEvent(trx, webhookEventId)
    if (!row) {
      deps.log.warn({ webhookEventId }, 'webhook event row not found')
      return null
    }
    if (row.status !== 'pending') return null
    const event = row.payload as unknown as webhook.Event
    const outcome: EventOutcome = isErased(row.payload)
      ? 'erased'
      : await dispatchEvent(
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
}

function isErased(payload: unknown): boolean {
  return (payload as { erased?: unknown } | null)?.erased === true
}
