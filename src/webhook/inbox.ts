import { jobIds } from '../jobs.ts'
import { createBatcher } from '../platform/batcher.ts'
import type { Deps } from '../platform/deps.ts'
import { withTimeout } from '../platform/timeout.ts'
import { insertWebhookEvents, type NewWebhookEvent } from './webhook.repo.ts'

export type InboxResult = 'new' | 'duplicate' | { error: unknown }

const ENQUEUE_TIMEOUT_MS = 1_000

/**
 * The durable webhook inbox. Rows from concurrent requests go into Postgres as one multi-row
 * insert per tick; a batch that fails for one bad row is retried row by row so only that row's
 * request fails. Enqueueing happens after the commit and never fails a request: the sweeper
 * re-enqueues anything Redis did not take.
 */
export function createInbox(deps: Pick<Deps, 'db' | 'queues' | 'log'>) {
  const writer = createBatcher<NewWebhookEvent, InboxResult>(async (rows) => {
    try {
      const fresh = await insertWebhookEvents(deps.db, rows)
      return rows.map((r) => (fresh.has(r.webhook_event_id) ? 'new' : 'duplicate'))
    } catch (error) {
      if (rows.length === 1 || isConnectionError(error)) throw error
      return Promise.all(rows.map(insertOne))
    }
  })

  async function insertOne(row: NewWebhookEvent): Promise<InboxResult> {
    try {
      const fresh = await insertWebhookEvents(deps.db, [row])
      return fresh.size > 0 ? 'new' : 'duplicate'
    } catch (error) {
      return { error }
    }
  }

  const enqueuer = createBatcher<string, true>(async (ids) => {
    const unique = [...new Set(ids)]
    await withTimeout(
      deps.queues.enqueueBulk(
        'webhook.process-event',
        unique.map((webhookEventId) => ({
          data: { webhookEventId },
          jobId: jobIds.webhookEvent(webhookEventId),
        })),
      ),
      ENQUEUE_TIMEOUT_MS,
      'enqueue webhook events',
    )
    return ids.map(() => true as const)
  })

  return {
    /** Resolves once the rows are committed (or rejects: nothing was stored). */
    store: (rows: NewWebhookEvent[]) => writer.run(rows),
    /** Best effort, after commit; failures are logged and left to the sweeper. */
    enqueue(webhookEventIds: string[]): Promise<void> {
      return enqueuer.run(webhookEventIds).then(
        () => undefined,
        (err: unknown) =>
          deps.log.warn(
            { err, count: webhookEventIds.length },
            'enqueue failed; the sweeper will pick these events up',
          ),
      )
    },
    async drain(): Promise<void> {
      await writer.drain()
      await enqueuer.drain()
    },
  }
}

export type Inbox = ReturnType<typeof createInbox>

/** Errors that mean "Postgres is not there", as opposed to "this row is bad". */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string') {
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE'].includes(code))
      return true
    if (/^(08|57P|53)/.test(code)) return true // connection exception, shutdown, resources
  }
  const message = error instanceof Error ? error.message : ''
  return /connect|terminat|timeout|Connection/i.test(message)
}
