import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSharedLimiter } from '../../src/platform/shared-limiter.ts'
import { TEST_REDIS_URL } from '../support/env.ts'

/** Two connections, as two worker processes would have. */
let redisA: Redis
let redisB: Redis

beforeAll(() => {
  redisA = new Redis(TEST_REDIS_URL)
  redisB = new Redis(TEST_REDIS_URL)
})
afterAll(async () => {
  await Promise.all([redisA.quit(), redisB.quit()])
})

/** The most grants in any window [t, t + windowMs) over the sorted grant times. */
function busiestWindow(sortedTimes: number[], windowMs: number): number {
  let most = 0
  let start = 0
  for (let end = 0; end < sortedTimes.length; end++) {
    while (sortedTimes[end]! - sortedTimes[start]! >= windowMs) start++
    most = Math.max(most, end - start + 1)
  }
  return most
}

describe('shared limiter', () => {
  it('two processes on one key never exceed perSecond in any sliding second, and all are served', async () => {
    const key = `test:line-limit:${randomUUID()}`
    const perSecond = 100
    const limiters = [
      createSharedLimiter(redisA, { key, perSecond }),
      createSharedLimiter(redisB, { key, perSecond }),
    ]
    const grants: number[] = []
    const started = performance.now()
    // 250 in total, split unevenly between the two, all asking at once.
    const asks = Array.from({ length: 250 }, (_, i) =>
      limiters[i % 5 < 2 ? 0 : 1]!.acquire().then(() => {
        grants.push(performance.now())
      }),
    )
    const liveness = new Promise<'stuck'>((resolve) => setTimeout(() => resolve('stuck'), 10_000))
    expect(await Promise.race([Promise.all(asks).then(() => 'done' as const), liveness])).toBe(
      'done',
    )

    expect(grants).toHaveLength(250)
    const sorted = [...grants].sort((a, b) => a - b)
    expect(busiestWindow(sorted, 1_000)).toBeLessThanOrEqual(perSecond)
    // 250 at under 100/s cannot all be granted within 1.5 s: the windows above are not empty.
    expect(sorted.at(-1)! - started).toBeGreaterThan(1_400)
    await redisA.del(key)
  })

  it('busiestWindow counts a sliding window, not calendar seconds', () => {
    // Two calendar seconds of 60 each, bunched around the boundary: 120 in one sliding second.
    const times = [
      ...Array.from({ length: 60 }, (_, i) => 900 + i),
      ...Array.from({ length: 60 }, (_, i) => 1_000 + i),
    ]
    expect(busiestWindow(times, 1_000)).toBe(120)
    expect(busiestWindow([0, 999, 1_000, 1_999], 1_000)).toBe(2)
  })
})
