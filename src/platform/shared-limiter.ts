import type { Redis } from './redis.ts'

/**
 * A token bucket in Redis, shared by every worker process: the LINE limits are per channel, not
 * per process (LINE-API.md §2.5). Redis's own clock refills it, so process clocks don't matter.
 * Returns [granted, ms until the rest could be granted].
 */
const TAKE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 60000)
local wait = 0
if granted < want then wait = math.ceil((math.min(want - granted, burst) - tokens) / rate) end
return {granted, wait}
`

type TakeCommand = {
  kizunaTakeTokens(
    key: string,
    ratePerMs: number,
    burst: number,
    want: number,
  ): Promise<[number, number]>
}

export type SharedLimiter = {
  /** Resolves when one request may go out. */
  acquire(): Promise<void>
}

export type SharedLimiterOptions = {
  key: string
  /** The endpoint's limit: requests in any one-second window never exceed it. */
  perSecond: number
}

/**
 * Keeps every one-second window under `perSecond`: a bucket of `burst` tokens refilled at
 * `budget - burst` per second admits at most `budget` (96.5% of the limit) in any second.
 * Waiting callers of one process share one Redis call at a time, asking for up to `burst`
 * tokens, so a process makes about `rate / burst` calls a second however many it sends.
 */
export function createSharedLimiter(redis: Redis, opts: SharedLimiterOptions): SharedLimiter {
  // 3.5% under the limit: requests granted apart can arrive bunched (a pause of the event loop
  // on either side); measured here, up to about 50 a second at LINE's 2,000.
  const budget = Math.max(1, Math.floor(opts.perSecond * 0.965))
  const burst = Math.max(1, Math.floor(budget / 50))
  const ratePerMs = Math.max(budget - burst, 1) / 1000
  const maxSleepMs = Math.max(1, Math.floor(burst / ratePerMs / 2))
  const waiting: (() => void)[] = []
  let running = false

  if (!('kizunaTakeTokens' in redis)) {
    redis.defineCommand('kizunaTakeTokens', { numberOfKeys: 1, lua: TAKE_SCRIPT })
  }
  const take = (want: number) =>
    (redis as unknown as TakeCommand).kizunaTakeTokens(opts.key, ratePerMs, burst, want)

  async function pump(): Promise<void> {
    if (running) return
    running = true
    while (waiting.length > 0) {
      const want = Math.min(waiting.length, burst)
      try {
        const [granted, waitMs] = await take(want)
        for (const release of waiting.splice(0, granted)) release()
        // Back before the bucket can fill up: tokens it could not hold would be lost.
        if (granted < want) await sleep(Math.min(Math.max(1, waitMs), maxSleepMs))
      } catch {
        // Redis away: callers keep waiting rather than exceed LINE's limit.
        await sleep(200)
      }
    }
    running = false
  }

  return {
    acquire() {
      return new Promise<void>((resolve) => {
        waiting.push(resolve)
        void pump()
      })
    },
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
