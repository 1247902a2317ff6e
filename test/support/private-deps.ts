import { randomUUID } from 'node:crypto'
import { Worker } from 'bullmq'
import { afterAll, beforeAll, beforeEach } from 'vitest'
import type { Env } from '../../src/config/env.ts'
import { createMailer } from '../../src/email/mailer.ts'
import type { QueueName } from '../../src/jobs.ts'
import { closeDeps, createDeps } from '../../src/main/deps.ts'
import { migrateToLatest } from '../../src/main/migrate.ts'
import { createProcessors } from '../../src/main/processors.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { createWorkerRedis } from '../../src/platform/redis.ts'
import { startWorkers } from '../../src/platform/workers.ts'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN, testEnv } from './harness.ts'
import { createPrivateDatabase } from './private-database.ts'

/**
 * Kizuna's deps (no server, no workers) on a migrated database of their own, with a LINE
 * stand-in and a private queue prefix: for tests that sweep, or change the schema. Each part's
 * cleanup is pushed onto `cleanups`, to run in reverse order.
 */
export async function startPrivateDeps(
  cleanups: (() => Promise<void>)[],
  envOverrides: Record<string, string> = {},
) {
  const database = await createPrivateDatabase()
  cleanups.push(() => database.drop())
  const line = await startLinePlatform({
    channelSecret: TEST_CHANNEL_SECRET,
    channelAccessToken: TEST_CHANNEL_TOKEN,
  })
  cleanups.push(() => line.close())
  const env = testEnv({
    DATABASE_URL: database.url,
    LINE_API_BASE_URL: line.apiBaseUrl,
    LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
    ...envOverrides,
  })
  const deps = await createDeps(env, { queuePrefix: `test-${randomUUID()}`, lineStandIn: true })
  cleanups.push(async () => {
    const queues = Object.values(deps.queues.byName)
    await Promise.all(queues.map((q) => q.obliterate({ force: true })))
    await closeDeps(deps)
  })
  await migrateToLatest(deps.db)
  return { deps, env, line }
}

/**
 * startPrivateDeps for a whole test file: started before its tests (given to `started`), closed
 * after them, and the LINE stand-in's recorded requests and scripted failures cleared before
 * each test.
 */
export function usePrivateDeps(
  started: (privateDeps: Awaited<ReturnType<typeof startPrivateDeps>>) => void,
): void {
  const cleanups: (() => Promise<void>)[] = []
  let line: LinePlatform | undefined
  beforeAll(async () => {
    const privateDeps = await startPrivateDeps(cleanups)
    line = privateDeps.line
    started(privateDeps)
  })
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
  })
  beforeEach(() => {
    line?.clearRequests()
    line?.clearFailures()
  })
}

/** The event ids of each webhook job waiting for a worker, a list per job. */
export async function waitingWebhookJobs(deps: Deps): Promise<string[][]> {
  const jobs = await deps.queues.byName.webhook.getJobs(['wait'])
  return jobs.map((job) => (job.data as { webhookEventIds: string[] }).webhookEventIds)
}

/** Kizuna's workers for these queues on private deps (startPrivateDeps), until `cleanups`. */
export function startQueueWorkers(
  cleanups: (() => Promise<void>)[],
  deps: Deps,
  env: Env,
  queues: QueueName[],
): void {
  const redis = createWorkerRedis(env.REDIS_URL)
  cleanups.push(async () => redis.disconnect())
  const mailer = createMailer(env, deps.db, { sandbox: false })
  const workers = startWorkers(deps, createProcessors(deps, { mailer }), redis, { queues })
  cleanups.push(() => workers.close())
}

/**
 * A worker on one queue of private deps that takes a job only when told to (`take`, BullMQ's
 * getNextJob) and does nothing with it: the test finishes it (moveToCompleted, moveToFailed with
 * `token`) or leaves it running. Closed after `cleanups`.
 */
export function manualWorker(
  cleanups: (() => Promise<void>)[],
  deps: Deps,
  env: Env,
  queue: QueueName,
) {
  const redis = createWorkerRedis(env.REDIS_URL)
  const worker = new Worker(queue, null, {
    connection: redis,
    prefix: deps.queues.prefix,
    autorun: false,
  })
  cleanups.push(async () => {
    await worker.close(true)
    redis.disconnect()
  })
  const token = randomUUID()
  const take = async () => {
    const job = await worker.getNextJob(token)
    if (!job) throw new Error('no job waiting')
    return job
  }
  return { take, token }
}
