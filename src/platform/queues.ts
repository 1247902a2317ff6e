import { type JobsOptions, Queue } from 'bullmq'
import { JOBS, type JobData, type JobName, QUEUE_NAMES, type QueueName } from '../jobs.ts'
import { createBatcher } from './batcher.ts'
import type { Logger } from './logger.ts'
import type { Redis } from './redis.ts'

export const defaultJobOptions: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
  removeOnComplete: { age: 86_400, count: 1_000 },
  removeOnFail: { age: 604_800 },
}

/**
 * Deliveries retry for longer: LINE honours a retry key for 24 hours, and an SMTP relay or LINE
 * outage of a few minutes must not fail every message sent during it (10 tries over ~30 min).
 */
const QUEUE_JOB_OPTIONS: Partial<Record<QueueName, JobsOptions>> = {
  delivery: { attempts: 10, backoff: { type: 'exponential', delay: 2_000, jitter: 0.5 } },
}

const jobOptionsOf = (queue: QueueName): JobsOptions => ({
  ...defaultJobOptions,
  ...QUEUE_JOB_OPTIONS[queue],
})

export type Queues = {
  prefix: string
  byName: Record<QueueName, Queue>
  enqueue<N extends JobName>(
    name: N,
    data: JobData<N>,
    opts: { jobId: string; delay?: number },
  ): Promise<void>
  enqueueBulk<N extends JobName>(
    name: N,
    items: { data: JobData<N>; jobId: string; delay?: number }[],
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
type AnyJob = { data: never; jobId: string; delay?: number }

export function createQueues(connection: Redis, log: Logger, prefix = 'kizuna'): Queues {
  const byName = Object.fromEntries(
    QUEUE_NAMES.map((name) => {
      const queue = new Queue(name, { connection, prefix, defaultJobOptions: jobOptionsOf(name) })
      queue.on('error', (error) => log.error({ err: error, queue: name }, 'queue error'))
      return [name, queue]
    }),
  ) as Record<QueueName, Queue>

  const parse = <N extends JobName>(name: N, data: JobData<N>) => JOBS[name].schema.parse(data)

  const enqueueBulk: Queues['enqueueBulk'] = async (name, items) => {
    if (items.length === 0) return
    const queue = byName[JOBS[name].queue]
    await queue.addBulk(
      items.map((item) => ({
        name,
        data: parse(name, item.data),
        opts: { ...jobOptionsOf(JOBS[name].queue), jobId: item.jobId, delay: item.delay },
      })),
    )
  }
  const soon = new Map<JobName, ReturnType<typeof createBatcher<AnyJob, true>>>()

  return {
    prefix,
    byName,
    async enqueue(name, data, opts) {
      if (!opts.jobId) throw new Error(`job ${name} needs a jobId`)
      await byName[JOBS[name].queue].add(name, parse(name, data), opts)
    },
    enqueueBulk,
    async enqueueSoon(name, items) {
      if (items.length === 0) return
      let batcher = soon.get(name)
      if (!batcher) {
        batcher = createBatcher<AnyJob, true>(
          async (jobs) => {
            await enqueueBulk(name, jobs)
            return jobs.map(() => true as const)
          },
          { lingerMs: SOON_LINGER_MS },
        )
        soon.set(name, batcher)
      }
      await batcher.run(items as AnyJob[])
    },
    async close() {
      await Promise.all([...soon.values()].map((b) => b.drain()))
      await Promise.all(Object.values(byName).map((q) => q.close()))
    },
  }
}
