import { jobIds, MAX_EVENTS_PER_JOB } from '../jobs.ts'
import type { Queues } from '../platform/queues.ts'

/**
 * Queues stored events for processing, in groups (one BullMQ job per group of ids). A cause
 * (the sweeper's) makes new job ids, so events whose earlier job failed are queued again.
 */
export async function enqueueWebhookEvents(
  queues: Queues,
  ids: string[],
  opts: { cause?: string } = {},
): Promise<void> {
  const unique = [...new Set(ids)]
  const groups: string[][] = []
  for (let i = 0; i < unique.length; i += MAX_EVENTS_PER_JOB) {
    groups.push(unique.slice(i, i + MAX_EVENTS_PER_JOB))
  }
  await queues.enqueueBulk(
    'webhook.process-events',
    groups.map((webhookEventIds) => ({
      data: { webhookEventIds },
      jobId: jobIds.webhookEvents(webhookEventIds, opts.cause),
    })),
  )
}
