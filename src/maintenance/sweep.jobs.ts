import type { Job, JobType, Queue } from 'bullmq'
import { listLineUsersWithoutProfile } from '../identity/identity.repo.ts'
import { type JobData, jobIds } from '../jobs.ts'
import { enqueueDeliveries } from '../messaging/delivery.service.ts'
import { listStaleDeliveries, SENDING_LEASE_SECONDS } from '../messaging/delivery-claim.repo.ts'
import type { Deps } from '../platform/deps.ts'
import { jobsBehind } from '../platform/jobs-behind.ts'
import { readByKeyset } from '../platform/keyset.ts'
import type { Redis } from '../platform/redis.ts'
import type { Processor } from '../platform/worker-types.ts'
import { sweepErasedUnlinks } from '../richmenu/erased-unlink.service.ts'
import { enqueueWebhookEventsByUser } from '../webhook/webhook.enqueue.ts'
import { listStalePendingEvents } from '../webhook/webhook.repo.ts'

/** Rows one read takes. */
const PAGE = 1_000
/**
 * Rows of each kind one sweep queues at most. A Redis outage leaves all it lasted unqueued (ten
 * minutes of webhooks at 100 events/s are 60,000): read a page a sweep, they waited an hour
 * while newer events overtook them; a sweep now takes them all, or the next one the rest.
 */
export const SWEEP_MAX = 50_000
/** Before a sweep's time (or hour) in the ids of the jobs it queues. */
const SWEEP_CAUSE = 'sweep-'
/** A job's states between its queueing and its end, besides waiting (BullMQ's JobType). */
const UNDER_WAY: JobType[] = ['active', 'delayed', 'prioritized', 'waiting-children']
type WebhookJobData = Partial<JobData<'webhook.process-events'>>
/** Rows younger than this are still on their way through the queue. */
export const SWEEP_GRACE_MS = 10_000
/** A missing profile is asked for again at most this often (it only fills in a name). */
export const PROFILE_RETRY_MS = 3_600_000

/** What a sweep found of each kind, and the steps that failed (their kinds count 0). */
export type SweepCounts = {
  events: number
  deliveries: number
  profiles: number
  unlinks: number
  failed: { step: SweepStep; err: unknown }[]
}
type SweepStep = 'events' | 'deliveries' | 'profiles' | 'unlinks'
type SweepDeps = Pick<Deps, 'db' | 'queues' | 'redis' | 'clock' | 'log' | 'metrics'>
/** One sweep's times and bounds, shared by its steps. */
type SweepRun = {
  cutoff: Date
  cause: string
  pages: { page: number; max: number }
  leaseSeconds: number
}

/**
 * Re-enqueues work that Postgres says is unfinished but Redis may not know about (a Redis outage
 * at webhook time, a crash between commit and enqueue), or whose job failed without the row
 * saying so (Postgres down through every attempt, a worker that crashed twice). Such a job is
 * kept a week under its id, so each sweep uses ids of its own; the row lock and status check
 * make a second job for the same row harmless. A delivery in `sending` is unfinished once its
 * lease (`leaseSeconds`, the send jobs' own) has run out. So is the unlink at LINE of an erased
 * person's menu until LINE confirmed it (sweepErasedUnlinks, whose job ids are its rows' state
 * and the hour instead). Each kind is a step of its own: one that fails (an odd row, a read
 * cancelled) is counted (kizuna_sweep_step_failures_total) and named in `failed`, and the others
 * run all the same.
 */
export async function sweepOnce(
  deps: SweepDeps,
  graceMs = SWEEP_GRACE_MS,
  leaseSeconds = SENDING_LEASE_SECONDS,
): Promise<SweepCounts> {
  const cutoff = new Date(deps.clock.now().getTime() - graceMs)
  const run: SweepRun = {
    cutoff,
    cause: `${SWEEP_CAUSE}${cutoff.getTime()}`,
    pages: { page: PAGE, max: SWEEP_MAX },
    leaseSeconds,
  }
  const steps: [SweepStep, () => Promise<number>][] = [
    ['events', () => sweepEvents(deps, run)],
    ['deliveries', () => sweepDeliveries(deps, run)],
    ['profiles', () => sweepProfiles(deps, run)],
    // Erased people's menus LINE has not confirmed unlinking (the command died, LINE refused).
    ['unlinks', () => sweepErasedUnlinks(deps, cutoff, run.pages)],
  ]
  const counts: SweepCounts = { events: 0, deliveries: 0, profiles: 0, unlinks: 0, failed: [] }
  for (const [step, sweepStep] of steps) {
    try {
      counts[step] = await sweepStep()
    } catch (err) {
      counts.failed.push({ step, err })
      deps.metrics.sweepStepFailures.inc({ step })
    }
  }
  if (counts.events + counts.deliveries + counts.profiles + counts.unlinks > 0) {
    // Found, not necessarily queued: a profile already asked for this hour keeps its job.
    const { failed: _, ...found } = counts
    deps.log.info(found, 'sweeper found unfinished work')
  }
  return counts
}

/**
 * Webhook events. A backlog (a burst of webhooks, a campaign) waits in its queue longer than the
 * grace, and each sweep would queue the waiting rows again under ids of its own. Events are
 * looked for only among those stored well before the oldest waiting job was queued: under steady
 * load there is always a backlog, and a Redis outage's events would otherwise wait for it to
 * drain. A sweep's own jobs hold events minutes older than they are, so while one of them waits
 * or runs no event is looked for (the sweep after them finds what they left); they go ahead of
 * the jobs waiting, so the next to run is one of them while any waits. A job is under way too
 * while it runs or waits out the backoff before its retry (delayed): its events are not queued
 * again, and while a sweep's own is, none is looked for. So is one waiting behind jobs queued
 * after its events (its retry, which BullMQ puts at the tail; a failed job's events queued
 * anew), as noted in jobs-behind.ts: while more are noted than a sweep reads (an outage failing
 * every job), no event is looked for.
 */
async function sweepEvents(deps: SweepDeps, run: SweepRun): Promise<number> {
  const webhook = deps.queues.byName.webhook
  const [next] = await webhook.getJobs(['wait'], 0, 0, true)
  const underWay = await webhook.getJobs(UNDER_WAY, 0, -1)
  const sweepUnderWay = [next, ...underWay].some((job) => job?.id?.includes(`-${SWEEP_CAUSE}`))
  if (sweepUnderWay) return 0
  const behind = await webhookJobsBehind(deps, webhook)
  if (!behind) return 0
  const held = new Set(
    [...underWay, ...behind].flatMap(
      (job) => (job?.data as WebhookJobData | undefined)?.webhookEventIds ?? [],
    ),
  )
  const eventCutoff = next
    ? new Date(Math.min(run.cutoff.getTime(), next.timestamp - SWEEP_GRACE_MS))
    : run.cutoff
  const events = (
    await readByKeyset(
      (after, limit) => listStalePendingEvents(deps.db, eventCutoff, limit, after),
      run.pages,
    )
  ).filter((event) => !held.has(event.webhook_event_id))
  await enqueueWebhookEventsByUser(deps.queues, events, { cause: run.cause })
  return events.length
}

/**
 * The jobs noted as waiting behind jobs queued after their events (jobs-behind.ts) that have not
 * ended, or null when more are noted than a sweep reads. Those ended or gone are taken out.
 */
async function webhookJobsBehind(deps: SweepDeps, webhook: Queue): Promise<Job[] | null> {
  const behind = jobsBehind(deps.redis, deps.queues.prefix, 'webhook')
  const noted = await behind.list(PAGE)
  const jobs = await Promise.all(noted.jobIds.map((id) => webhook.getJob(id)))
  await behind.forget(noted.jobIds.filter((_, i) => !jobs[i] || jobs[i].finishedOn))
  if (noted.more) return null
  return jobs.filter((job): job is Job => job !== undefined && !job.finishedOn)
}

/**
 * Deliveries. As with events, a backlog (a campaign) waits longer than the grace: only rows due
 * and written well before the oldest waiting job was queued are looked for, so a delivery whose
 * job was lost is queued again about when that job would have run, behind a campaign queued
 * before it, not after the queue has drained. A job delayed to a row's send_after or to its
 * retry (retry_at) reaches the queue at that time, and a running job's rows are `sending`: the
 * rows say so themselves (listStaleDeliveries). A delivery whose own job (one delivery, its
 * `delivery-<id>`) was queued and not yet taken by a worker is left to it (a late enqueue, or a
 * job waiting behind a campaign queued after the row). The sweep's own jobs go ahead of the
 * waiting ones: while one of them is next, none is looked for.
 */
async function sweepDeliveries(deps: SweepDeps, run: SweepRun): Promise<number> {
  const queue = deps.queues.byName.delivery
  const [next] = await queue.getJobs(['wait'], 0, 0, true)
  if (next?.id?.includes(`-${SWEEP_CAUSE}`)) return 0
  const olderThan = next
    ? new Date(Math.min(run.cutoff.getTime(), next.timestamp - SWEEP_GRACE_MS))
    : run.cutoff
  const stale = await readByKeyset(
    (after, limit) => listStaleDeliveries(deps.db, olderThan, limit, after, run.leaseSeconds),
    run.pages,
  )
  const waiting = await waitingForWorker(
    deps.redis,
    queue,
    stale.map(({ id }) => jobIds.deliveries([id])),
  )
  const deliveries = stale.filter((_, i) => !waiting[i]).map(({ id }) => ({ id }))
  await enqueueDeliveries(deps.queues, deliveries, { cause: run.cause, first: true })
  return deliveries.length
}

/**
 * For each job id, whether that job was queued and no worker has taken it yet (BullMQ sets
 * processedOn when one does). A page of ids to a round trip.
 */
async function waitingForWorker(redis: Redis, queue: Queue, ids: string[]): Promise<boolean[]> {
  const waiting: boolean[] = []
  for (let i = 0; i < ids.length; i += PAGE) {
    const pipeline = redis.pipeline()
    for (const id of ids.slice(i, i + PAGE)) {
      pipeline.hmget(queue.toKey(id), 'timestamp', 'processedOn', 'finishedOn')
    }
    for (const [err, fields] of (await pipeline.exec()) ?? []) {
      if (err) throw err
      const [queuedAt, takenAt, finishedAt] = fields as (string | null)[]
      waiting.push(queuedAt !== null && takenAt === null && finishedAt === null)
    }
  }
  return waiting
}

/**
 * LINE profiles still missing. One id per hour, not per sweep: a profile LINE keeps refusing (or
 * a LINE outage) would otherwise cost a call per user every sweep.
 */
async function sweepProfiles(deps: SweepDeps, run: SweepRun): Promise<number> {
  const profiles = await readByKeyset(
    (after, limit) => listLineUsersWithoutProfile(deps.db, run.cutoff, limit, after),
    run.pages,
  )
  const hour = Math.floor(run.cutoff.getTime() / PROFILE_RETRY_MS)
  // A page to a request: one request for 50,000 jobs would hold Redis for a while.
  for (let i = 0; i < profiles.length; i += PAGE) {
    await deps.queues.enqueueBulk(
      'identity.fetch-profile',
      profiles.slice(i, i + PAGE).map(({ id }) => ({
        data: { lineUserId: id },
        jobId: jobIds.profile(id, `${SWEEP_CAUSE}${hour}`),
      })),
    )
  }
  return profiles.length
}

export const sweep: Processor<'maintenance.sweep'> = {
  async run(deps) {
    const { failed } = await sweepOnce(deps)
    // The job fails, so that it shows: logged once, each step's error in it (as any job's
    // failure is, an outage's not), and counted in kizuna_jobs_total.
    if (failed.length > 0) {
      const steps = failed.map((f) => f.step).join(', ')
      throw new AggregateError(
        failed.map((f) => f.err),
        `sweeper steps failed: ${steps}`,
      )
    }
  },
}
