import { listLineUsersWithoutProfile } from '../identity/identity.repo.ts'
import { jobIds } from '../jobs.ts'
import { listStaleDeliveries } from '../messaging/delivery.repo.ts'
import { enqueueDeliveries } from '../messaging/delivery.service.ts'
import type { Deps } from '../platform/deps.ts'
import type { Processor } from '../platform/worker-types.ts'
import { enqueueWebhookEvents } from '../webhook/webhook.enqueue.ts'
import { listStalePendingEvents } from '../webhook/webhook.repo.ts'

const BATCH = 1_000
/** Rows younger than this are still on their way through the queue. */
export const SWEEP_GRACE_MS = 10_000
/** A missing profile is asked for again at most this often (it only fills in a name). */
export const PROFILE_RETRY_MS = 3_600_000

/**
 * Re-enqueues work that Postgres says is unfinished but Redis may not know about (a Redis outage
 * at webhook time, a crash between commit and enqueue), or whose job failed without the row
 * saying so (Postgres down through every attempt, a worker that crashed twice). Such a job is
 * kept a week under its id, so each sweep uses ids of its own; the row lock and status check
 * make a second job for the same row harmless.
 */
export async function sweepOnce(
  deps: Pick<Deps, 'db' | 'queues' | 'clock' | 'log'>,
  graceMs = SWEEP_GRACE_MS,
) {
  const cutoff = new Date(deps.clock.now().getTime() - graceMs)
  // A backlog (a burst of webhooks, a campaign) waits in its queue longer than the grace, and
  // each sweep would queue the waiting rows again under ids of its own. Events are looked for
  // only among those stored well before the oldest waiting job was queued: under steady load
  // there is always a backlog, and a Redis outage's events would otherwise wait for it to drain.
  const [oldestWaiting] = await deps.queues.byName.webhook.getJobs(['wait'], 0, 0, true)
  const eventCutoff = oldestWaiting
    ? new Date(Math.min(cutoff.getTime(), oldestWaiting.timestamp - SWEEP_GRACE_MS))
    : cutoff
  const events = await listStalePendingEvents(deps.db, eventCutoff, BATCH)
  const cause = `sweep-${cutoff.getTime()}`
  await enqueueWebhookEvents(deps.queues, events, { cause })
  // A campaign's deliveries: looked for once the queue has caught up.
  const backlog = await deps.queues.byName.delivery.getWaitingCount()
  const deliveries = backlog > 0 ? [] : await listStaleDeliveries(deps.db, cutoff, BATCH)
  await enqueueDeliveries(
    deps.queues,
    deliveries.map((id) => ({ id })),
    { cause },
  )
  // One id per hour, not per sweep: a profile LINE keeps refusing (or a LINE outage) would
  // otherwise cost a call per user every sweep.
  const profiles = await listLineUsersWithoutProfile(deps.db, cutoff, BATCH)
  const hour = Math.floor(cutoff.getTime() / PROFILE_RETRY_MS)
  await deps.queues.enqueueBulk(
    'identity.fetch-profile',
    profiles.map((lineUserId) => ({
      data: { lineUserId },
      jobId: jobIds.profile(lineUserId, `sweep-${hour}`),
    })),
  )
  const counts = { events: events.length, deliveries: deliveries.length, profiles: profiles.length }
  if (counts.events + counts.deliveries + counts.profiles > 0) {
    // Found, not necessarily queued: a profile already asked for this hour keeps its job.
    deps.log.info(counts, 'sweeper found unfinished work')
  }
  return counts
}

export const sweep: Processor<'maintenance.sweep'> = {
  async run(deps) {
    await sweepOnce(deps)
  },
}
