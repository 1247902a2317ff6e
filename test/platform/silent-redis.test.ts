import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { jobIds } from '../../src/jobs.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { createQueues } from '../../src/platform/queues.ts'
import { createProducerRedis, createWorkerRedis, isRedisOutage } from '../../src/platform/redis.ts'
import { profilelessFriend } from '../identity/profileless-friend.ts'
import { TEST_REDIS_URL } from '../support/env.ts'
import { startFrozenProxy } from '../support/frozen-proxy.ts'
import { startTestKizuna } from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/**
 * A proxy to the test Redis whose connections a test can silence. Push its close after what uses
 * it (cleanups run last first): without a fix, commands on the silent connections never end.
 */
async function redisProxy() {
  const target = new URL(TEST_REDIS_URL)
  const proxy = await startFrozenProxy({
    host: target.hostname,
    port: Number(target.port || 6379),
  })
  return { proxy, url: `redis://127.0.0.1:${proxy.port}` }
}

/** The warnings and errors logged: one error naming REDIS_URL for an outage, nothing else. */
const problems = (logs: ReturnType<typeof logSink>) =>
  logs.entries().filter((l) => (l.level as number) >= 40)
const OUTAGE_LINE = expect.objectContaining({
  level: 50,
  msg: expect.stringContaining('Redis is unreachable at REDIS_URL'),
})

/** Waits for the line saying Redis is back. */
const back = (logs: ReturnType<typeof logSink>) =>
  eventually(
    () =>
      expect(logs.entries()).toContainEqual(
        expect.objectContaining({
          level: 30,
          msg: expect.stringContaining('Redis is reachable again'),
        }),
      ),
    60_000,
  )

describe('a worker whose Redis connections go silent', () => {
  it('reconnects on its own and processes the jobs queued after, once each', async () => {
    const { proxy, url } = await redisProxy()
    const logs = logSink()
    const k = await startTestKizuna(
      { ROLE: 'worker', REDIS_URL: url },
      { log: createLogger('info', logs.sink) },
    )
    cleanups.push(() => k.stopAll())
    cleanups.push(() => proxy.close())
    // The test queues its jobs on a connection of its own, straight to Redis.
    const direct = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null })
    cleanups.push(async () => void direct.disconnect())
    const producer = createQueues(direct, createLogger('silent'), k.deps.queues.prefix)
    cleanups.push(() => producer.close())
    const fetchProfile = (lineUserId: string) =>
      producer.enqueue(
        'identity.fetch-profile',
        { lineUserId },
        { jobId: jobIds.profile(lineUserId, 'silent-redis-test') },
      )
    const savedName = async (lineUserId: string) => {
      const row = await k.deps.db
        .selectFrom('line_user')
        .select('display_name')
        .where('id', '=', lineUserId)
        .executeTakeFirstOrThrow()
      return row.display_name
    }

    // The worker is at work: its connections are open and in use.
    const before = await profilelessFriend(k, '前の人')
    await fetchProfile(before.lineUser.id)
    await eventually(async () => expect(await savedName(before.lineUser.id)).toBe('前の人'))

    // One job is under way (LINE answers its profile lookup in 2 s) when a failover, a NAT or a
    // load balancer drops the connections: no answer, no FIN, no RST, ever.
    const during = await profilelessFriend(k, '途中の人')
    k.line.failNext({
      method: 'GET',
      path: `/v2/bot/profile/${during.user.userId}`,
      timeoutMs: 2_000,
      status: 200,
      body: { userId: during.user.userId, displayName: '途中の人' },
    })
    await fetchProfile(during.lineUser.id)
    await eventually(() =>
      expect(k.line.requestsTo('GET', `/v2/bot/profile/${during.user.userId}`)).toHaveLength(1),
    )
    proxy.silenceExisting()
    const after = await profilelessFriend(k, '後の人')
    await fetchProfile(after.lineUser.id)
    await eventually(async () => expect(await savedName(after.lineUser.id)).toBe('後の人'), 60_000)
    // Both done, in Redis too, and each asked LINE once.
    const reader = new Queue('identity', { connection: direct, prefix: k.deps.queues.prefix })
    cleanups.push(() => reader.close())
    for (const friend of [during, after]) {
      expect(await savedName(friend.lineUser.id)).toBe(friend.user.displayName)
      const jobId = jobIds.profile(friend.lineUser.id, 'silent-redis-test')
      await eventually(async () => expect(await reader.getJobState(jobId)).toBe('completed'))
      expect(k.line.requestsTo('GET', `/v2/bot/profile/${friend.user.userId}`)).toHaveLength(1)
    }

    // The operator reads one line naming REDIS_URL, and one when it is back.
    await back(logs)
    expect(problems(logs)).toEqual([OUTAGE_LINE])
    expect(String(problems(logs)[0]?.msg)).toContain(`127.0.0.1:${proxy.port}`)
  }, 120_000)

  it('serving the webhook too (ROLE=all): answers at once, queues and processes the events', async () => {
    const { proxy, url } = await redisProxy()
    const logs = logSink()
    const k = await startTestKizuna({ REDIS_URL: url }, { log: createLogger('info', logs.sink) })
    cleanups.push(() => k.stopAll())
    cleanups.push(() => proxy.close())
    const first = k.line.users.create()
    expect((await k.line.users.follow(first.userId))?.status).toBe(200)
    await eventually(() => expect(k.line.inbox(first.userId)).toHaveLength(1))

    proxy.silenceExisting()
    const user = k.line.users.create()
    expect((await k.line.users.follow(user.userId))?.status).toBe(200)
    await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1), 60_000)
    await back(logs)
    expect(problems(logs)).toEqual([OUTAGE_LINE])
  }, 120_000)

  it("is logged as one outage, over once the worker's connection answers too", async () => {
    const { proxy, url } = await redisProxy()
    cleanups.push(() => proxy.close())
    const logs = logSink()
    // Found silent after 1 s, not 15: no blocking command waits on these connections.
    const producer = createProducerRedis(url, createLogger('info', logs.sink), 1_000)
    const worker = createWorkerRedis(url, producer, 1_000)
    cleanups.push(async () => {
      producer.disconnect()
      worker.disconnect()
    })
    // As BullMQ's workers report their connection's errors (platform/workers.ts).
    worker.on('error', (err) => isRedisOutage(producer, err))
    await eventually(() => producer.ping())
    await worker.ping()

    proxy.silenceExisting()
    // The producer finds it; nothing waits on the worker's connection meanwhile.
    await producer.ping().catch(() => {})
    // A job's end that Redis recorded before its answer was lost, sent again (BullMQ's words).
    const endAgain = new Error('Missing lock for job profile-x. moveToFinished')
    expect(isRedisOutage(producer, endAgain)).toBe(true)
    await back(logs)
    expect(await worker.ping()).toBe('PONG')
    expect(problems(logs)).toEqual([OUTAGE_LINE])
  }, 60_000)
})
