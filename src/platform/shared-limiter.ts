import type { Redis } from './redis.ts'

/**
 * Send slots from a schedule in Redis shared by every worker process: the LINE limits are per
 * channel, not per process (LINE-API.md §2.5). The schedule (GCRA) hands out slots `interval` ms
 * apart on Redis's clock, at most `horizon` ms ahead, so any one-second window of slots holds at
 * most `1000 / interval` of them however many processes ask. Returns [granted, ms from now to
 * the first granted slot, ms until a slot is free when none was granted].
 * The schedule's time is stored with all 17 digits: Lua's tostring keeps 14, which at today's
 * epoch rounds to 0.1 ms and made a grant of 1-4 slots of 0.512 ms advance it by 0.5-2.0 ms
 * (~2% more slots than the rate). A schedule more than a second ahead of Redis's clock means the
 * clock stepped back (NTP, a failover): it restarts from now instead of stalling every sender.
 */
const RESERVE_SCRIPT = `
local interval = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local lag = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now - lag then tat = now - lag end
if tat > now + horizon + 1000 then tat = now + horizon end
local room = math.floor((now + horizon - tat) / interval)
local granted = math.max(0, math.min(want, room))
if granted > 0 then
  redis.call('SET', KEYS[1], string.format('%.17g', tat + granted * interval), 'PX', 60000)
  return {granted, tostring(tat - now), '0'}
end
return {0, '0', tostring(tat - now - horizon + interval)}
`

type ReserveCommand = {
  kizunaReserveSlots(
    key: string,
    intervalMs: number,
    want: number,
    horizonMs: number,
    lagMs: number,
  ): Promise<[number, string, string]>
}

export type SharedLimiter = {
  /**
   * Starts `call` at its slot, in the same turn of the event loop as the slot is counted (a
   * request made later could land in the next second's count), and settles as it does.
   */
  run<T>(call: () => Promise<T>): Promise<T>
}

export type SharedLimiterOptions = {
  key: string
  /** The endpoint's limit, per sliding second (how exactly it holds: createSharedLimiter). */
  perSecond: number
  /**
   * The most calls of this process under way at once (at least 1, at most 5% of `perSecond`).
   * LINE counts arrivals, and a call started before a second began can arrive in it (a pause on
   * either side), so calls start at `perSecond - inFlight` a second at most.
   */
  inFlight: number
}

/** How far ahead one Redis call reserves slots: at 2,000/s, 40 slots per call. */
const HORIZON_MS = 20
/**
 * A slot may start a call up to this late, and the schedule hands out slots this far back that no
 * process took: a process that fell behind (a busy event loop) catches up that much (1.5% more
 * deliveries a second in the benchmark). Its own log keeps that within its budget; on top of
 * other processes' calls it can add this much of the rate to a second.
 */
export const LATE_SLOT_MS = 20
/** The longest a process sleeps before asking the schedule again. */
const MAX_WAIT_MS = 250

/**
 * Paces calls to LINE's limit of `perSecond` in any sliding second (counted as LINE counts them,
 * on arrival), in three layers. Globally, slots from the shared schedule in Redis (GCRA),
 * reserved up to 20 ms ahead and topped up before they run out, so a process makes ~70 Redis
 * calls a second however much it sends. Locally, a log of this process's last `budget` starts:
 * a call that waited (a busy event loop, a slow answer) starts only when the last second holds
 * fewer than `budget`, so catching up never bunches into more. And at most `inFlight` calls
 * under way, so arrivals in any second are at most `budget + inFlight = perSecond` for one
 * process. With several, the starts keep to the shared schedule, but a second can also receive
 * each one's calls under way and up to LATE_SLOT_MS of catching up (LINE answers that with a
 * 429, which slows the queue).
 */
export function createSharedLimiter(redis: Redis, opts: SharedLimiterOptions): SharedLimiter {
  // One call under way and one start a second would already make two arrivals in a second.
  if (!(opts.perSecond >= 2)) throw new Error('a shared limiter needs perSecond of at least 2')
  // Capped at 5% of the rate: at a low limit, many calls under way would eat the budget.
  const inFlight = Math.max(1, Math.min(opts.inFlight, Math.floor(opts.perSecond / 20)))
  const budget = opts.perSecond - inFlight // at least 1: perSecond >= 2, inFlight <= 5% or 1
  const intervalMs = 1000 / budget
  const chunk = Math.max(1, Math.floor(HORIZON_MS / intervalMs))
  const horizonMs = Math.max(HORIZON_MS, intervalMs)
  /** Start times of this process's last `budget` calls (a ring; -Infinity = none yet). */
  const started = new Float64Array(budget).fill(Number.NEGATIVE_INFINITY)
  let oldest = 0
  /** Local times of reserved, unused slots, in order. */
  const slots: number[] = []
  const waiting: (() => void)[] = []
  let active = 0
  let callEnded: (() => void) | null = null
  let running = false
  let refilling: Promise<void> | null = null

  if (!('kizunaReserveSlots' in redis)) {
    redis.defineCommand('kizunaReserveSlots', { numberOfKeys: 1, lua: RESERVE_SCRIPT })
  }
  const reserve = (want: number) =>
    (redis as unknown as ReserveCommand).kizunaReserveSlots(
      opts.key,
      intervalMs,
      want,
      horizonMs,
      LATE_SLOT_MS,
    )

  async function refill(): Promise<void> {
    try {
      const [granted, firstIn, waitMs] = await reserve(chunk)
      // Slot times on this clock, counted from the answer: never earlier than Redis meant.
      const at = performance.now() + Number(firstIn)
      for (let i = 0; i < granted; i++) slots.push(at + i * intervalMs)
      // Capped: whatever the schedule says, ask again soon rather than sleep on a stale answer.
      if (granted === 0) await sleep(Math.min(Number(waitMs), MAX_WAIT_MS))
    } catch {
      // Redis away: callers keep waiting rather than exceed LINE's limit.
      await sleep(200)
    }
  }

  /** Tops the slots up before they run out, so the schedule has no gap while Redis answers. */
  function topUp(now: number): Promise<void> | null {
    const last = slots.length > 0 ? slots[slots.length - 1]! : now
    if (!refilling && last - now < horizonMs / 2) {
      refilling = refill().finally(() => {
        refilling = null
      })
    }
    return refilling
  }

  async function pump(): Promise<void> {
    if (running) return
    running = true
    while (waiting.length > 0) {
      if (active >= inFlight) {
        await new Promise<void>((resolve) => {
          callEnded = resolve
        })
        continue
      }
      const now = performance.now()
      while (slots.length > 0 && slots[0]! < now - LATE_SLOT_MS) slots.shift()
      const refilled = topUp(now)
      if (slots.length === 0) {
        await refilled
        continue
      }
      // The next slot has come (within a timer's resolution), and the last second holds fewer
      // than `budget` starts: exactly (early by a little, each call of a bunch would be early),
      // with a millisecond for the time between a start's stamp and its request.
      const windowOpens = started[oldest]! + 1001
      if (slots[0]! > now + 0.5 || windowOpens > now) {
        await sleep(Math.max(slots[0]!, windowOpens) - now)
        continue
      }
      slots.shift()
      started[oldest] = performance.now()
      oldest = (oldest + 1) % budget
      waiting.shift()!()
    }
    running = false
  }

  function ended(): void {
    active -= 1
    const wake = callEnded
    callEnded = null
    wake?.()
  }

  return {
    run<T>(call: () => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        waiting.push(() => {
          active += 1
          let result: Promise<T>
          try {
            result = call()
          } catch (error) {
            result = Promise.reject(error)
          }
          result.then(resolve, reject).finally(ended)
        })
        void pump()
      })
    },
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.ceil(ms))))
}
