import { type JobsOptions, Queue } from 'bullmq'
import { JOBS, type JobData, type JobName, QUEUE_NAMES, type QueueName } from '../jobs.ts'
import { createBatcher } from './batcher.ts'
import type { Logger } from './logger.ts'
import { isRedisOutage, type Redis } from './redis.ts'
import { withTimeout } from './timeout.ts'

export const defaultJobOptions: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
  removeOnComplete: { age: 86_400, count: 1_000 },
  removeOnFail: { age: 604_800 },
}

/**
 * Deliveries retry for longer: LINE honours a retry key for 24 hours, and an SMTP relay or LINE
 * outage of a few minutes must not fail every message sent during it (10 tries: 9 waits from 2 s
 * doubling, jittered down by up to half, 9–17 min in all).
 */
const QUEUE_JOB_OPTIONS: Partial<Record<QueueName, JobsOptions>> = {
  delivery: { attempts: 10, backoff: { type: 'exponential', delay: 2_000, jitter: 0.5 } },
  // The nightly jobs (scheduled, or queued to catch up: their templates take the queue's options)
  // ride out a Postgres outage or restart of up to an hour: 8 tries, 7 waits from 30 s doubling,
  // 63.5 min in all. With 5 from 1 s, one of ~15 s at 04:15 failed the night's run for good. The
  // sweep sets its own 1 attempt (the next interval is its retry).
  maintenance: { attempts: 8, backoff: { type: 'exponential', delay: 30_000 } },
}

const jobOptionsOf = (queue: QueueName): JobsOptions => ({
  ...defaultJobOptions,
  ...QUEUE_JOB_OPTIONS[queue],
})

/**
 * Jobs that give way on their queue: BullMQ runs every job without a priority before any with
 * one. The check of a bulk link asks LINE about its 500 users one by one, and a relink of 100k
 * friends queues 200 of them: a new friend's link job must not wait behind them (a check that
 * waits only leaves a missed link a little longer as it is).
 */
const JOB_PRIORITY: Partial<Record<JobName, number>> = { 'richmenu.check-links': 10 }
const priorityOf = (name: JobName) => {
  const priority = JOB_PRIORITY[name]
  return priority === undefined ? {} : { priority }
}

export type Queues = {
  prefix: string
  byName: Record<QueueName, Queue>
  enqueue<N extends JobName>(
    name: N,
    data: JobData<N>,
    opts: { jobId: string; delay?: number },
  ): Promise<void>
  /** `first`: ahead of the jobs waiting (BullMQ's lifo), the last item first of all. */
  enqueueBulk<N extends JobName>(
    name: N,
    items: { data: JobData<N>; jobId: string; delay?: number; first?: boolean }[],
  ): Promise<void>
  /**
   * enqueueBulk for jobs nobody waits on (queued after the answer): the jobs of concurrent
   * callers go to Redis together, one round trip per 20 ms instead of one per caller.
   */
  enqueueSoon<N extends JobName>(
    name: N,
    items: { data: JobData<N>; jobId: string; delay?: number }[],
  ): Promise<void>
  close(): Promise<void>
}

/** How long enqueueSoon waits for company. */
const SOON_LINGER_MS = 20
/**
 * How long an enqueueSoon flush may take. A Redis that stops answering without closing the
 * connection (a partition) would otherwise hold every later caller, and shutdown, until TCP
 * gives up (~15 min). The callers' rows are the truth: the sweeper queues them later.
 */
export const SOON_TIMEOUT_MS = 2_000

/**
 * Job ids are required (they make enqueueing idempotent). BullMQ refuses ids with `:` or made
 * of digits only, inside addBulk, which would fail every job sent with the bad one.
 */
function checkJobId(name: string, jobId: string): string {
  if (!jobId) throw new Error(`job ${name} needs a jobId`)
  if (jobId.includes(':') || /^\d+$/.test(jobId)) {
    throw new Error(`job ${name}: a jobId may not contain ":" or be only digits`)
  }
  return jobId
}

export function createQueues(connection: Redis, log: Logger, prefix: string): Queues {
  const byName = Object.fromEntries(
    QUEUE_NAMES.map((name) => {
      const queue = new Queue(name, { connection, prefix, defaultJobOptions: jobOptionsOf(name) })
      queue.on('error', (error) => {
        if (!isRedisOutage(connection, error)) log.error({ err: error, queue: name }, 'queue error')
      })
      return [name, queue]
    }),
  ) as Record<QueueName, Queue>

  const parse = <N extends JobName>(name: N, data: JobData<N>) => JOBS[name].schema.parse(data)

  /** A job as addBulk takes it, its data checked against the job's schema (throws if bad). */
  const bulkJob = <N extends JobName>(
    name: N,
    item: { data: JobData<N>; jobId: string; delay?: number; first?: boolean },
  ) => ({
    name,
    data: parse(name, item.data),
    opts: {
      ...jobOptionsOf(JOBS[name].queue),
      jobId: checkJobId(name, item.jobId),
      delay: item.delay,
      lifo: item.first,
      ...priorityOf(name),
    },
  })
  type BulkJob = ReturnType<typeof bulkJob>
  const soon = new Map<QueueName, ReturnType<typeof createBatcher<BulkJob, true>>>()

  return {
    prefix,
    byName,
    async enqueue(name, data, opts) {
      checkJobId(name, opts.jobId)
      await byName[JOBS[name].queue].add(name, parse(name, data), { ...opts, ...priorityOf(name) })
    },
    async enqueueBulk(name, items) {
      if (items.length === 0) return
      await byName[JOBS[name].queue].addBulk(items.map((item) => bulkJob(name, item)))
    },
    async enqueueSoon(name, items) {
      if (items.length === 0) return
      // Checked now: a bad job fails its own caller, not the callers it would travel with.
      const jobs = items.map((item) => bulkJob(name, item))
      const queueName = JOBS[name].queue
      let batcher = soon.get(queueName)
      if (!batcher) {
        const queue = byName[queueName]
        batcher = createBatcher<BulkJob, true>(
          async (batch) => {
            await withTimeout(queue.addBulk(batch), SOON_TIMEOUT_MS, `enqueue ${queueName} jobs`)
            return batch.map(() => true as const)
          },
          { lingerMs: SOON_LINGER_MS },
        )
        soon.set(queueName, batcher)
      }
      await batcher.run(jobs)
    },
    async close() {
      await Promise.all([...soon.values()].map((b) => b.drain()))
      await Promise.all(Object.values(byName).map((q) => q.close()))
    },
  }
}
