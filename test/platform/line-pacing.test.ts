import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLine, type Line } from '../../src/platform/line.ts'
import { createLinePacing } from '../../src/platform/line-pacing.ts'
import { createMetrics } from '../../src/platform/metrics.ts'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
import { TEST_REDIS_URL } from '../support/env.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN, testEnv } from '../support/harness.ts'
import { busiestWindow } from '../support/windows.ts'

/**
 * LINE's limits are per channel: the calls of every worker process together stay under each
 * endpoint's limit (DESIGN.md, LINE-API.md §2.5). Two Redis connections and two `Line`s stand for
 * two worker processes; the stand-in's arrival times are what LINE would count.
 */
let platform: LinePlatform
const connections: Redis[] = []
let userIds: string[]

beforeAll(async () => {
  platform = await startLinePlatform({
    channelSecret: TEST_CHANNEL_SECRET,
    channelAccessToken: TEST_CHANNEL_TOKEN,
  })
  userIds = []
  for (let i = 0; i < 4; i++) {
    const user = platform.users.create()
    await platform.users.follow(user.userId)
    userIds.push(user.userId)
  }
})
afterAll(async () => {
  await Promise.all(connections.map((c) => c.quit()))
  await platform.close()
})

/** Two worker processes' LINE clients on one Redis key space, with these limits. */
function twoWorkers(rates?: Record<string, number>): Line[] {
  const prefix = `test-${randomUUID()}`
  const env = testEnv({
    LINE_API_BASE_URL: platform.apiBaseUrl,
    LINE_DATA_API_BASE_URL: platform.dataApiBaseUrl,
  })
  return [0, 1].map(() => {
    const redis = new Redis(TEST_REDIS_URL)
    connections.push(redis)
    const pacing = createLinePacing(redis, prefix, { inFlight: 8, rates })
    return createLine(env, createMetrics(), { pacing })
  })
}

/** When the stand-in received these calls, oldest first. */
const arrivals = (method: string, template: string) =>
  platform
    .requestsTo(method, template)
    .map((r) => r.at)
    .sort((a, b) => a - b)

describe('LINE calls other than sends', () => {
  it('profile fetches and link tokens of two workers together stay within each endpoint’s limit', async () => {
    const perSecond = 5
    const workers = twoWorkers({ profile: perSecond, 'link-token': perSecond })
    platform.clearRequests()
    // All asked at once, spread over both workers: unpaced, they would arrive together.
    const calls = Array.from({ length: 12 }, (_, i) => {
      const line = workers[i % 2]!
      const userId = userIds[i % userIds.length]!
      return [
        line.call('profile', (c) => c.getProfile(userId)),
        line.call('link-token', (c) => c.issueLinkToken(userId)),
      ]
    })
    await Promise.all(calls.flat())

    for (const template of ['/v2/bot/profile/{userId}', '/v2/bot/user/{userId}/linkToken']) {
      const method = template.endsWith('linkToken') ? 'POST' : 'GET'
      const times = arrivals(method, template)
      expect(times).toHaveLength(12)
      // The shared schedule's 5 a second, and at most one slot a worker used late (50 ms);
      // a limiter per worker would let 10 arrive in a second.
      expect(busiestWindow(times, 1_000)).toBeLessThanOrEqual(perSecond + 1)
    }
    expect(platform.requests.filter((r) => r.status !== 200)).toEqual([])
  })

  it("the rich menu list keeps to LINE's own 10 a second", async () => {
    const workers = twoWorkers()
    platform.clearRequests()
    await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        workers[i % 2]!.call('richmenu-list', (c) => c.getRichMenuList()),
      ),
    )
    const times = arrivals('GET', '/v2/bot/richmenu/list')
    expect(times).toHaveLength(16)
    expect(busiestWindow(times, 1_000)).toBeLessThanOrEqual(11)
    // The stand-in keeps LINE's bucket for the list: it never had to refuse one.
    expect(platform.requests.map((r) => r.status)).toEqual(times.map(() => 200))
  })

  it('paces every endpoint, at LINE’s default unless listed; hourly ones count in the hourly budget instead', () => {
    const pacing = createLinePacing(new Redis(TEST_REDIS_URL, { lazyConnect: true }), 'x', {
      inFlight: 1,
    })
    expect(pacing.limiter('profile')).not.toBeNull()
    expect(pacing.limiter('profile')).toBe(pacing.limiter('profile'))
    expect(pacing.limiter('some-endpoint-added-later')).not.toBeNull()
    expect(pacing.limiter('richmenu-create')).toBeNull()
  })
})
