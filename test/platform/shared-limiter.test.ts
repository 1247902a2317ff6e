import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSharedLimiter, LATE_SLOT_MS } from '../../src/platform/shared-limiter.ts'
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
  it('two processes on one key stay within perSecond (+ the catching up) in any sliding second, and all are served', async () => {
    const key = `test:line-limit:${randomUUID()}`
    const perSecond = 100
    const limiters = [
      createSharedLimiter(redisA, { key, perSecond, inFlight: 1 }),
      createSharedLimiter(redisB, { key, perSecond, inFlight: 1 }),
    ]
    const grants: number[] = []
    const started = performance.now()
    // 250 in total, split unevenly between the two, all asking at once.
    const asks = Array.from({ length: 250 }, (_, i) =>
      limiters[i % 5 < 2 ? 0 : 1]!.run(async () => {
        grants.push(performance.now())
      }),
    )
    const liveness = new Promise<'stuck'>((resolve) => setTimeout(() => resolve('stuck'), 10_000))
    expect(await Promise.race([Promise.all(asks).then(() => 'done' as const), liveness])).toBe(
      'done',
    )

    expect(grants).toHaveLength(250)
    const sorted = [...grants].sort((a, b) => a - b)
    // Exact for one process (below); two may add what one catches up after falling behind.
    expect(busiestWindow(sorted, 1_000)).toBeLessThanOrEqual(
      perSecond + Math.ceil((perSecond * LATE_SLOT_MS) / 1_000),
    )
    // 250 at under 100/s cannot all be granted within 1.5 s: the windows above are not empty.
    expect(sorted.at(-1)! - started).toBeGreaterThan(1_400)
    await redisA.del(key)
  })

  it('calls that arrive late still fit the limit: at most perSecond - inFlight start in any second', async () => {
    const key = `test:line-limit:${randomUUID()}`
    const perSecond = 200
    const inFlight = 10
    const limiter = createSharedLimiter(redisA, { key, perSecond, inFlight })
    const starts: number[] = []
    // Where the other side counts the call: any time before it settles (a stalled server
    // counts a whole burst at once, when it wakes up).
    const arrivals: number[] = []
    let active = 0
    let mostActive = 0
    const slots = Array.from({ length: inFlight }, async () => {
      for (let n = 0; n < 60; n++) {
        await limiter.run(async () => {
          starts.push(performance.now())
          active += 1
          mostActive = Math.max(mostActive, active)
          const lasts = n % 20 === 0 ? 150 : Math.random() * 10
          await new Promise((r) => setTimeout(r, lasts))
          arrivals.push(performance.now())
          active -= 1
        })
      }
    })
    await Promise.all(slots)

    expect(starts).toHaveLength(600)
    expect(mostActive).toBeLessThanOrEqual(inFlight)
    expect(busiestWindow(starts, 1_000)).toBeLessThanOrEqual(perSecond - inFlight)
    expect(
      busiestWindow(
        [...arrivals].sort((a, b) => a - b),
        1_000,
      ),
    ).toBeLessThanOrEqual(perSecond)
    // Paced, not merely capped: 600 calls at 190/s take more than three seconds.
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThan(2_900)
    await redisA.del(key)
  })

  it('at a low limit, keeps at most 5% of it under way so the calls under way cannot eat the budget', async () => {
    const key = `test:line-limit:${randomUUID()}`
    const limiter = createSharedLimiter(redisA, { key, perSecond: 60, inFlight: 48 })
    const starts: number[] = []
    let active = 0
    let mostActive = 0
    await Promise.all(
      Array.from({ length: 90 }, () =>
        limiter.run(async () => {
          starts.push(performance.now())
          active += 1
          mostActive = Math.max(mostActive, active)
          await new Promise((r) => setTimeout(r, 30))
          active -= 1
        }),
      ),
    )
    expect(mostActive).toBeLessThanOrEqual(3)
    // 57 a second (60 − 3), not 12 (60 − 48).
    expect(busiestWindow(starts, 1_000)).toBeLessThanOrEqual(57)
    expect(busiestWindow(starts, 1_000)).toBeGreaterThan(40)
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
