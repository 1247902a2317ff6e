import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { classifyLineError, createLine } from '../../src/platform/line.ts'
import { createLinePacing, REDIS_WAIT_MS } from '../../src/platform/line-pacing.ts'
import { createMetrics } from '../../src/platform/metrics.ts'
import { createProducerRedis, type Redis } from '../../src/platform/redis.ts'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN, testEnv } from '../support/harness.ts'
import { startPrivateRedis } from '../support/private-redis.ts'

/**
 * The per-second schedules live in Redis: while it does not answer, a paced call gives up after
 * a bound (a transient failure its caller retries) instead of holding its job, a webhook lane or
 * a deploy's lock for as long as the outage lasts.
 */
let platform: LinePlatform
let userId: string
const cleanups: (() => unknown)[] = []

beforeAll(async () => {
  platform = await startLinePlatform({
    channelSecret: TEST_CHANNEL_SECRET,
    channelAccessToken: TEST_CHANNEL_TOKEN,
  })
  const user = platform.users.create()
  await platform.users.follow(user.userId)
  userId = user.userId
})
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
  await platform.close()
})

const env = () =>
  testEnv({
    LINE_API_BASE_URL: platform.apiBaseUrl,
    LINE_DATA_API_BASE_URL: platform.dataApiBaseUrl,
  })

/** A settled promise's outcome, or 'stuck' when it has not settled after `ms`. */
async function outcomeWithin<T>(promise: Promise<T>, ms: number) {
  const stuck = new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), ms).unref())
  return Promise.race([
    promise.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
    stuck,
  ])
}

describe('paced LINE calls while Redis is away', () => {
  it('fail within the bound as a transient failure naming REDIS_URL, and go through once Redis is back', async () => {
    let redisServer = await startPrivateRedis()
    cleanups.push(() => redisServer.stop())
    // The workers' connection (createDeps): commands fail at once while Redis is away.
    const redis: Redis = createProducerRedis(redisServer.url)
    cleanups.push(() => redis.disconnect())
    await once(redis, 'ready')
    const line = createLine(env(), createMetrics(), {
      pacing: createLinePacing(redis, `test-${randomUUID()}`, { inFlight: 4 }),
    })
    cleanups.push(() => line.close())
    await line.call('profile', (c) => c.getProfile(userId))

    await redisServer.stop()
    // The slots the first call reserved (20 ms ahead, usable 50 ms late) are gone.
    await new Promise((r) => setTimeout(r, 100))
    platform.clearRequests()
    const outcome = await outcomeWithin(
      line.call('profile', (c) => c.getProfile(userId)),
      REDIS_WAIT_MS + 10_000,
    )
    expect(outcome).not.toBe('stuck')
    if (outcome === 'stuck' || outcome.ok) throw new Error('the call should have failed')
    expect(classifyLineError(outcome.error)).toMatchObject({ kind: 'transient' })
    expect((outcome.error as Error).message).toMatch(/REDIS_URL/)
    // Held back, never sent: LINE's limit is not risked.
    expect(platform.requests).toEqual([])

    // A call made while Redis is still away waits for it rather than failing at once: Redis
    // comes back while it waits (well inside the bound), and it goes through.
    const waiting = line.call('profile', (c) => c.getProfile(userId))
    expect(await outcomeWithin(waiting, 500)).toBe('stuck')
    redisServer = await startPrivateRedis(redisServer.port)
    expect(await outcomeWithin(waiting, REDIS_WAIT_MS + 10_000)).toMatchObject({ ok: true })
    expect(platform.requestsTo('GET', '/v2/bot/profile/{userId}')).toHaveLength(1)
  }, 60_000)

  it('a slot on a busy schedule in a Redis that answers is waited for however long it takes', async () => {
    const redisServer = await startPrivateRedis()
    cleanups.push(() => redisServer.stop())
    const redis = createProducerRedis(redisServer.url)
    cleanups.push(() => redis.disconnect())
    await once(redis, 'ready')
    const line = createLine(env(), createMetrics(), {
      pacing: createLinePacing(redis, `test-${randomUUID()}`, {
        inFlight: 4,
        rates: { profile: 2 },
        redisWaitMs: 1_000,
      }),
    })
    cleanups.push(() => line.close())
    // At 2 a second, the last of seven waits ~3 s for its slot: far longer than the bound.
    const calls = Array.from({ length: 7 }, () => line.call('profile', (c) => c.getProfile(userId)))
    const outcomes = await outcomeWithin(Promise.all(calls), 8_000)
    expect(outcomes).toMatchObject({ ok: true })
  }, 15_000)
})
