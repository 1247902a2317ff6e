import { jobIds, MAX_EVENTS_PER_JOB } from '../jobs.ts'
import type { Queues } from '../platform/queues.ts'

/**
 * Queues stored events for processing, in groups (one BullMQ job per group of ids). A cause
 * (the sweeper's) makes new job ids, so events whose earlier job failed are queued again.
 * Returns the jobs' ids.
 */
export async function enqueueWebhookEvents(
  queues: Queues,
  ids: string[],
  opts: { cause?: string } = {},
): Promise<string[]> {
  return enqueueLanes(
    queues,
    [...new Set(ids)].map((id) => [id]),
    opts,
  )
}

/**
 * enqueueWebhookEvents for events found long after they arrived (a Redis outage's, by the
 * sweeper), oldest first: each user's go in one job, which applies them in the order they
 * happened, where jobs run side by side. A user with more than a job's worth is split. The jobs
 * go ahead of those waiting (their events happened before), the oldest events' job first.
 */
export async function enqueueWebhookEventsByUser(
  queues: Queues,
  events: { webhook_event_id: string; user_id: string | null }[],
  opts: { cause?: string } = {},
): Promise<void> {
  const lanes = new Map<string, string[]>()
  for (const event of events) {
    const key = event.user_id ? `user ${event.user_id}` : `event ${event.webhook_event_id}`
    const lane = lanes.get(key)
    if (lane) lane.push(event.webhook_event_id)
    else lanes.set(key, [event.webhook_event_id])
  }
  await enqueueLanes(queues, [...lanes.values()], { ...opts, first: true })
}

/**
 * One job per group of up to MAX_EVENTS_PER_JOB ids, never splitting a lane that fits in one;
 * `first`: ahead of the jobs waiting, in the same order among themselves.
 */
async function enqueueLanes(
  queues: Queues,
  lanes: string[][],
  opts: { cause?: string; first?: boolean },
): Promise<string[]> {
  const groups: string[][] = []
  let group: string[] = []
  for (const lane of lanes) {
    if (group.length + lane.length > MAX_EVENTS_PER_JOB && group.length > 0) {
      groups.push(group)
      group = []
    }
    for (let i = 0; i < lane.length; i += MAX_EVENTS_PER_JOB) {
      const part = lane.slice(i, i + MAX_EVENTS_PER_JOB)
      if (part.length === MAX_EVENTS_PER_JOB) groups.push(part)
      else group.push(...part)
    }
  }
  if (group.length > 0) groups.push(group)
  const jobs = groups.map((webhookEventIds) => ({
    data: { webhookEventIds },
    jobId: jobIds.webhookEvents(webhookEventIds, opts.cause),
    first: opts.first,
  }))
  // Each job put first goes ahead of the one before: the first group last.
  await queues.enqueueBulk('webhook.process-events', opts.first ? jobs.reverse() : jobs)
  return jobs.map((job) => job.jobId)
}
