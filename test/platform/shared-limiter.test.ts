import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSharedLimiter } from '../../src/platform/shared-limiter.ts'
import { TEST_REDIS_URL } from '../support/env.ts'

const run = promisify(execFile)
const limiterModule = new URL('../../src/platform/shared-limiter.ts', import.meta.url).href

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
    // The schedule's 99 a second (100 − 1 under way), plus what one may catch up after falling
    // behind (20 ms: 2 slots). Exact for one process (below).
    expect(busiestWindow(sorted, 1_000)).toBeLessThanOrEqual(101)
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

  it("several processes at LINE's push rate share one schedule of exactly perSecond - inFlight", async () => {
    const key = `test:line-limit:${randomUUID()}`
    const connections = [redisA, redisB, new Redis(TEST_REDIS_URL)]
    // As the workers run it: 2,000/s with 48 under way, so 1,952 starts a second at most.
    const limiters = connections.map((r) =>
      createSharedLimiter(r, { key, perSecond: 2_000, inFlight: 48 }),
    )
    const starts: number[] = []
    try {
      await Promise.all(
        Array.from({ length: 6_000 }, (_, i) =>
          limiters[i % 3]!.run(async () => {
            starts.push(performance.now())
          }),
        ),
      )
    } finally {
      await connections[2]!.quit()
    }
    const sorted = [...starts].sort((a, b) => a - b)
    // Steady state, two seconds in the middle: the schedule's rate, plus at most one catch-up
    // (20 ms); three schedules would allow three times as many.
    const from = sorted[0]! + 500
    const inMiddle = sorted.filter((t) => t >= from && t < from + 2_000).length
    expect(inMiddle).toBeLessThanOrEqual(2 * 1_952 + 40)
    expect(inMiddle).toBeGreaterThan(2 * 1_952 * 0.8)
    await redisA.del(key)
  })

  it("hands a call's rejection or throw to its caller, and frees its place for the next call", async () => {
    const key = `test:line-limit:${randomUUID()}`
    const limiter = createSharedLimiter(redisA, { key, perSecond: 100, inFlight: 1 })
    await expect(limiter.run(() => Promise.reject(new Error('refused')))).rejects.toThrow('refused')
    await expect(
      limiter.run(() => {
        throw new Error('thrown')
      }),
    ).rejects.toThrow('thrown')
    // With one call under way at most, this would never start if either had kept its place.
    const next = limiter.run(async () => 'ran')
    const liveness = new Promise((r) => setTimeout(() => r('stuck'), 3_000))
    expect(await Promise.race([next, liveness])).toBe('ran')
    await redisA.del(key)
  })

  it('starts the first call at once in a new process', async () => {
    // performance.now() counts from the process's start: a log of "no starts yet" read as
    // starts at time 0 once held every call of a process's first second.
    const script = `
      import { Redis } from 'ioredis'
      import { createSharedLimiter } from ${JSON.stringify(limiterModule)}
      const redis = new Redis(process.env.REDIS_URL)
      const limiter = createSharedLimiter(redis, { key: process.env.KEY, perSecond: 100, inFlight: 1 })
      const asked = performance.now()
      await limiter.run(async () => {})
      console.log(JSON.stringify({ asked, waited: performance.now() - asked }))
      await redis.quit()`
    const key = `test:line-limit:${randomUUID()}`
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, REDIS_URL: TEST_REDIS_URL, KEY: key },
    })
    const { asked, waited } = JSON.parse(stdout) as { asked: number; waited: number }
    expect(asked).toBeLessThan(1_000) // the process was young enough for this to mean something
    expect(waited).toBeLessThan(150)
    await redisA.del(key)
  })

  it('after the schedule was idle, a burst gets at most 20 ms of unused slots at once', async () => {
    const key = `test:line-limit:${randomUUID()}`
    const limiter = createSharedLimiter(redisA, { key, perSecond: 100, inFlight: 1 })
    await limiter.run(async () => {})
    await new Promise((r) => setTimeout(r, 300))
    // At 99 a second, 20 ms of slots is 2: the 5th call of the burst starts ~20 ms later.
    const t = performance.now()
    const times: number[] = []
    await Promise.all(
      Array.from({ length: 5 }, () => limiter.run(async () => times.push(performance.now() - t))),
    )
    expect(times[4]!).toBeGreaterThan(15)
    await redisA.del(key)
  })

  it('refuses a limit below 2 a second (one call under way would already make two)', () => {
    expect(() => createSharedLimiter(redisA, { key: 'x', perSecond: 1, inFlight: 1 })).toThrow(
      /at least 2/,
    )
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
