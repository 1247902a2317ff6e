import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSharedLimiter } from '../../src/platform/shared-limiter.ts'
import { TEST_REDIS_URL } from '../support/env.ts'
import { busiestWindow } from '../support/windows.ts'

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

/**
 * The most calls that could arrive in one window [t, t + windowMs), each arriving at some time
 * between its start and its answer: those started before the window closes and answered after it
 * opens. The worst window opens at an answer (or just after a start − windowMs).
 */
function mostPossibleArrivals(calls: { start: number; end: number }[], windowMs: number): number {
  const opens = calls.flatMap((c) => [c.end, c.start - windowMs + 1e-6])
  let most = 0
  for (const t of opens) {
    const n = calls.filter((c) => c.start < t + windowMs && c.end >= t).length
    most = Math.max(most, n)
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
    // The schedule's 100 a second, plus an idle schedule's catching up (20 ms: 2 slots) and a
    // process's own slots used late (50 ms: 5). Exact for one process (below); two schedules
    // would allow 200.
    expect(busiestWindow(sorted, 1_000)).toBeLessThanOrEqual(107)
    // 250 at 100/s cannot all be granted within 1.4 s: the windows above are not empty.
    expect(sorted.at(-1)! - started).toBeGreaterThan(1_400)
    await redisA.del(key)
  })

  it('counts a call from its start to its answer: however late it arrives, no second can receive more than perSecond, and quick calls still use the whole limit', async () => {
    const key = `test:line-limit:${randomUUID()}`
    const perSecond = 200
    const inFlight = 10
    const limiter = createSharedLimiter(redisA, { key, perSecond, inFlight })
    const calls: { start: number; end: number }[] = []
    let active = 0
    let mostActive = 0
    const lanes = Array.from({ length: inFlight }, async () => {
      for (let n = 0; n < 60; n++) {
        await limiter.run(async () => {
          const start = performance.now()
          active += 1
          mostActive = Math.max(mostActive, active)
          // Every 20th call stalls (a slow server counts a whole stalled burst at once, when it
          // wakes up); the rest answer within a few milliseconds.
          const lasts = n % 20 === 0 ? 150 : Math.random() * 3
          await new Promise((r) => setTimeout(r, lasts))
          active -= 1
          calls.push({ start, end: performance.now() })
        })
      }
    })
    await Promise.all(lanes)

    expect(calls).toHaveLength(600)
    expect(mostActive).toBeLessThanOrEqual(inFlight)
    expect(mostPossibleArrivals(calls, 1_000)).toBeLessThanOrEqual(perSecond)
    // Not a fixed share set aside for the calls under way (that capped starts at perSecond −
    // inFlight = 190 in any second): only the answer time of each call is given up.
    const starts = calls.map((c) => c.start).sort((a, b) => a - b)
    expect(busiestWindow(starts, 1_000)).toBeGreaterThan(perSecond - inFlight)
    // Paced, not merely capped: 600 calls at 200/s take more than two seconds.
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThan(1_900)
    await redisA.del(key)
  })

  it('at a low limit with many calls under way, the calls under way count against the second', async () => {
    const key = `test:line-limit:${randomUUID()}`
    const limiter = createSharedLimiter(redisA, { key, perSecond: 20, inFlight: 48 })
    const calls: { start: number; end: number }[] = []
    await Promise.all(
      Array.from({ length: 50 }, () =>
        limiter.run(async () => {
          const start = performance.now()
          // Longer than the schedule's interval (50 ms): several are under way at once.
          await new Promise((r) => setTimeout(r, 120))
          calls.push({ start, end: performance.now() })
        }),
      ),
    )
    expect(mostPossibleArrivals(calls, 1_000)).toBeLessThanOrEqual(20)
    const starts = calls.map((c) => c.start).sort((a, b) => a - b)
    expect(busiestWindow(starts, 1_000)).toBeGreaterThan(12)
    await redisA.del(key)
  })

  it("several processes at LINE's push rate share one schedule of perSecond", async () => {
    const key = `test:line-limit:${randomUUID()}`
    const connections = [redisA, redisB, new Redis(TEST_REDIS_URL)]
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
    // (20 ms) and slots used late (50 ms); three schedules would allow three times as many.
    const from = sorted[0]! + 500
    const inMiddle = sorted.filter((t) => t >= from && t < from + 2_000).length
    expect(inMiddle).toBeLessThanOrEqual(2 * 2_000 + 40 + 100)
    expect(inMiddle).toBeGreaterThan(2 * 2_000 * 0.8)
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

  it('starts the first call at once in a new process, not after its first second', async () => {
    // performance.now() counts from the process's start: a log of "no starts yet" read as
    // starts at time 0 once held every call of a process's first second.
    const script = `
      import { Redis } from 'ioredis'
      import { createSharedLimiter } from ${JSON.stringify(limiterModule)}
      const redis = new Redis(process.env.REDIS_URL)
      const limiter = createSharedLimiter(redis, { key: process.env.KEY, perSecond: 100, inFlight: 1 })
      const asked = performance.now()
      const firstSecondOver = new Promise((r) =>
        setTimeout(() => r('held past the first second'), 1000 - asked).unref(),
      )
      const first = await Promise.race([limiter.run(async () => 'started'), firstSecondOver])
      console.log(JSON.stringify({ asked, first }))
      // A call still held would keep asking the schedule.
      redis.disconnect()
      process.exit(0)`
    // A process already most of a second old when it asks cannot tell (a busy machine): the
    // next one may be younger.
    for (let child = 0; child < 5; child++) {
      const key = `test:line-limit:${randomUUID()}`
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, REDIS_URL: TEST_REDIS_URL, KEY: key },
      })
      await redisA.del(key)
      const { asked, first } = JSON.parse(stdout) as { asked: number; first: string }
      if (asked > 600) continue
      expect(first).toBe('started')
      return
    }
    throw new Error('no process asked within its first 600 ms: too busy a machine to tell')
  })

  it('after the schedule was idle, a burst gets at most 20 ms of unused slots at once', async () => {
    const key = `test:line-limit:${randomUUID()}`
    const limiter = createSharedLimiter(redisA, { key, perSecond: 100, inFlight: 1 })
    await limiter.run(async () => {})
    await new Promise((r) => setTimeout(r, 300))
    // At 100 a second, 20 ms of slots is 2: the 5th call of the burst starts ~20 ms later.
    const t = performance.now()
    const times: number[] = []
    await Promise.all(
      Array.from({ length: 5 }, () => limiter.run(async () => times.push(performance.now() - t))),
    )
    expect(times[4]!).toBeGreaterThan(15)
    await redisA.del(key)
  })

  it('refuses a limit, or a number of calls under way, that is not a whole number of at least 1', () => {
    for (const bad of [0, 0.5, 2.5, Number.NaN]) {
      expect(() => createSharedLimiter(redisA, { key: 'x', perSecond: bad, inFlight: 1 })).toThrow(
        /whole perSecond of at least 1/,
      )
      expect(() => createSharedLimiter(redisA, { key: 'x', perSecond: 10, inFlight: bad })).toThrow(
        /whole inFlight of at least 1/,
      )
    }
  })

  it('keeps serving when a call hands back a plain value instead of a promise', async () => {
    const key = `test:line-limit:${randomUUID()}`
    const limiter = createSharedLimiter(redisA, { key, perSecond: 100, inFlight: 1 })
    const plain = (() => 'plain') as unknown as () => Promise<string>
    expect(await limiter.run(plain)).toBe('plain')
    const next = limiter.run(async () => 'next')
    const liveness = new Promise((r) => setTimeout(() => r('stuck'), 3_000))
    expect(await Promise.race([next, liveness])).toBe('next')
    await redisA.del(key)
  })

  it('mostPossibleArrivals counts every call whose start-to-answer span meets the window', () => {
    const calls = [
      { start: 0, end: 10 },
      { start: 5, end: 1_200 },
      { start: 900, end: 1_101 },
      { start: 2_500, end: 2_501 },
    ]
    // [10, 1010) meets the first three; nothing meets both 10 and 2,500.
    expect(mostPossibleArrivals(calls, 1_000)).toBe(3)
    expect(
      mostPossibleArrivals(
        [
          { start: 0, end: 1 },
          { start: 1_001, end: 1_002 },
        ],
        1_000,
      ),
    ).toBe(1)
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
