import {
  type Job,
  type JobSchedulerJson,
  type JobsOptions,
  type Queue,
  UnrecoverableError,
  Worker,
  type WorkerOptions,
} from 'bullmq'
import { JOBS, type JobName, QUEUE_NAMES, type QueueName } from '../jobs.ts'
import type { Deps } from './deps.ts'
import { jobsBehind } from './jobs-behind.ts'
import { isOutageError } from './outage.ts'
import { PacingUnavailable } from './pacing-unavailable.ts'
import { isRedisOutage, type Redis } from './redis.ts'
import type { Processor, Processors } from './worker-types.ts'

/** Per-queue worker settings in one place. */
export function workerOptions(deps: Pick<Deps, 'env'>): Record<QueueName, Partial<WorkerOptions>> {
  return {
    webhook: { concurrency: deps.env.WORKER_CONCURRENCY },
    // A job carries up to 100 deliveries, paced by the shared LINE limiters: four at once keep
    // ~200 ms of sends waiting at LINE's rate while the next job claims and renders. With eight
    // the waiting messages outgrew the young generation and were promoted: the delivery
    // benchmark's worker used 39-43 s of CPU against 35-38 s with four (ratio 0.925-0.944 against
    // 0.941-0.953, run alternately). No BullMQ limiter: a LINE 429 backs off the deliveries it
    // refused (backOffRateLimited), never the whole queue.
    delivery: { concurrency: 4 },
    identity: { concurrency: 8 },
    // Link jobs (one call per 500 users) and relinks: two at once stay far below LINE's 2,000/s;
    // deploys take a Postgres advisory lock, so a second one waits for the first; a relink that
    // finds another under way owes it one more pass and ends (relinkRichMenus), keeping its slot
    // free for link jobs.
    richmenu: { concurrency: 2 },
    maintenance: { concurrency: 1 },
  }
}

/**
 * Queues whose jobs waiting for a retry are noted (jobs-behind.ts): the sweeper's webhook events
 * must not be queued again while such a job waits behind a backlog.
 */
const NOTED_RETRIES: ReadonlySet<QueueName> = new Set(['webhook'])

export type Workers = {
  workers: Worker[]
  /** The jobs under way, by queue (`webhook 1, delivery 2`), or '' when none. */
  underWay(): string
  close(): Promise<void>
}

export function startWorkers(
  deps: Deps,
  processors: Processors,
  connection: Redis,
  opts: { queues?: QueueName[] } = {},
): Workers {
  const options = workerOptions(deps)
  const running = new Map<Promise<unknown>, QueueName>()
  const workers = (opts.queues ?? QUEUE_NAMES).map((queue) => {
    const worker: Worker = new Worker(
      queue,
      (job, token) => {
        const run = runJob(job, token)
        running.set(run, queue)
        return run.finally(() => running.delete(run))
      },
      { connection, prefix: deps.queues.prefix, autorun: true, ...options[queue] },
    )
    async function runJob(job: Job, token: string | undefined) {
      const name = job.name as JobName
      const def = JOBS[name]
      if (!def || def.queue !== queue) throw new UnrecoverableError(`unknown job ${job.name}`)
      const parsed = def.schema.safeParse(job.data)
      if (!parsed.success) throw new UnrecoverableError(`bad payload for ${name}`)
      const processor = processors[name] as Processor<JobName>
      try {
        await processor.run(deps, parsed.data as never, { job, worker, token })
      } catch (error) {
        const err = error instanceof Error ? error : new Error(String(error))
        const final =
          err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
        if (final && err.name !== 'RateLimitError' && processor.onFinalFailure) {
          await processor.onFinalFailure(deps, parsed.data as never, err)
        }
        // Before BullMQ moves it: held back for its retry, then behind the jobs queued meanwhile.
        if (!final) await noteRetried(job, 'note')
        else if (job.attemptsMade > 0) await noteRetried(job, 'forget')
        throw err
      }
      if (job.attemptsMade > 0) await noteRetried(job, 'forget')
    }
    /** A retry of a job whose queue the sweeper reads for them (jobs-behind.ts), or its end. */
    async function noteRetried(job: Job, what: 'note' | 'forget') {
      if (!NOTED_RETRIES.has(queue) || !job.id) return
      // Best effort: with Redis away, BullMQ cannot move the job either.
      await jobsBehind(deps.redis, deps.queues.prefix, queue)
        [what]([job.id])
        .catch(() => {})
    }
    worker.on('error', (err) => {
      if (!isRedisOutage(deps.redis, err)) deps.log.error({ err, queue }, 'worker error')
    })
    worker.on('failed', (job, err) => {
      deps.metrics.jobs.inc({ queue, outcome: 'failed' })
      // A Postgres outage was logged once, as the outage; its retries are counted only. So is a
      // Redis outage that held a LINE call's pacing slot (PacingUnavailable: Redis did not answer).
      if (isOutageError(err)) return
      if (err instanceof PacingUnavailable && isRedisOutage(deps.redis, err)) return
      deps.log.warn(
        { err, queue, jobId: job?.id, attempts: job?.attemptsMade },
        'job attempt failed',
      )
    })
    worker.on('completed', () => deps.metrics.jobs.inc({ queue, outcome: 'completed' }))
    return worker
  })
  return {
    workers,
    underWay() {
      const counts = new Map<QueueName, number>()
      for (const queue of running.values()) counts.set(queue, (counts.get(queue) ?? 0) + 1)
      return [...counts].map(([queue, n]) => `${queue} ${n}`).join(', ')
    },
    async close() {
      // BullMQ stops taking jobs at once, then waits for those under way. It then waits for its
      // blocking connection to end, which never happens while that connection is reconnecting
      // (Redis down, or back a moment ago: taskforcesh/bullmq#4656): a SIGTERM then ran into the
      // 30 s deadline and exit 1. Once our jobs are done, it gets a moment, then we go on.
      const closed = Promise.all(workers.map((w) => w.close()))
      const jobsDone = (async () => {
        while (running.size > 0) await Promise.allSettled([...running.keys()])
        await new Promise((r) => setTimeout(r, CLOSE_AFTER_JOBS_MS).unref())
      })()
      await Promise.race([closed, jobsDone])
    },
  }
}

/** How long a worker may take to close once its jobs are done (see Workers.close). */
const CLOSE_AFTER_JOBS_MS = 1_000

/**
 * The nightly jobs, at store time (TZ_STORE). Their scheduler ids are also their names in
 * maintenance_run, where each records its last success (catchUpNightlyRuns).
 */
export const NIGHTLY_JOBS = [
  { id: 'refresh-spend', name: 'maintenance.refresh-spend', pattern: '15 4 * * *' },
  { id: 'prune-webhook-events', name: 'maintenance.prune-webhook-events', pattern: '45 4 * * *' },
  { id: 'purge-link-rows', name: 'maintenance.purge-link-rows', pattern: '50 4 * * *' },
  { id: 'forget-chunk-bodies', name: 'maintenance.forget-chunk-bodies', pattern: '55 4 * * *' },
] as const satisfies readonly { id: string; name: JobName; pattern: string }[]

/**
 * Periodic work runs on BullMQ Job Schedulers: one schedule each, whichever worker takes it.
 * The sweeper re-queues unfinished rows; the daily refresh keeps 12-month spend and tiers right
 * as purchases age out of the window; the daily prune deletes old processed webhook events,
 * the daily purge what expired account-link rows hold, and the daily forgetting the requests of
 * day-old multicast chunks.
 *
 * A schedule is written only when it is missing or its settings differ, and with `onlyMissing`
 * (a Redis reconnect) only when missing: BullMQ's upsert replaces the scheduler's next job, so a
 * nightly job already due (waiting behind a long job, or due while no worker ran) was removed
 * and put back to the next night at every worker start and reconnect.
 */
export async function scheduleSweeper(
  deps: Pick<Deps, 'env' | 'queues'>,
  opts: { onlyMissing?: boolean } = {},
): Promise<void> {
  const jobOpts = { removeOnComplete: true, removeOnFail: 100 }
  const maintenance = deps.queues.byName.maintenance
  const schedule = async (
    id: string,
    repeat: { every?: number; pattern?: string; tz?: string },
    template: { name: JobName; opts: JobsOptions },
  ) => {
    const current = await maintenance.getJobScheduler(id)
    if (current && (opts.onlyMissing || sameSchedule(current, maintenance, repeat, template))) {
      return
    }
    await maintenance.upsertJobScheduler(id, repeat, { ...template, data: {} })
  }
  // A failed sweep is not tried again at once: the next interval is its retry (with the queue's
  // attempts, each failing step was run, logged and counted five times in seconds).
  await schedule(
    'sweeper',
    { every: deps.env.SWEEP_INTERVAL_MS },
    { name: 'maintenance.sweep', opts: { ...jobOpts, attempts: 1 } },
  )
  for (const job of NIGHTLY_JOBS) {
    await schedule(
      job.id,
      { pattern: job.pattern, tz: deps.env.TZ_STORE },
      { name: job.name, opts: jobOpts },
    )
  }
}

/** Whether a stored scheduler runs `template` on `repeat`, with the queue's job options. */
function sameSchedule(
  current: JobSchedulerJson,
  queue: Queue,
  repeat: { every?: number; pattern?: string; tz?: string },
  template: { name: string; opts: JobsOptions },
): boolean {
  const wantedOpts = { ...queue.defaultJobOptions, ...template.opts }
  return (
    current.name === template.name &&
    current.every === repeat.every &&
    current.pattern === repeat.pattern &&
    current.tz === repeat.tz &&
    sortedJson(current.template?.opts ?? {}) === sortedJson(wantedOpts)
  )
}

/** JSON with every object's keys sorted: Redis gives the options back in its own order. */
function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  )
}
