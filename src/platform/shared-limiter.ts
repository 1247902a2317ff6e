import { PacingUnavailable } from './pacing-unavailable.ts'
import type { Redis } from './redis.ts'
import { withTimeout } from './timeout.ts'

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
  /** The most calls of this process under way at once (its connections to LINE). */
  inFlight: number
  /**
   * How long a call waits while the schedule in Redis gives no answer (errors, or silence)
   * before it is rejected with PacingUnavailable, never started. Unset: however long it takes.
   * Waiting on a schedule that answers (a busy one) is never cut short.
   */
  redisWaitMs?: number
}

/** How far ahead one Redis call reserves slots: at 2,000/s, 40 slots per call. */
const HORIZON_MS = 20
/**
 * The schedule hands out slots this far back that no process took: after an idle moment, a
 * burst starts with this much of the rate at once.
 */
const LATE_SLOT_MS = 20
/**
 * A process may use a slot it reserved up to this late. Its event loop stalls 15-45 ms at a
 * time while it renders and collects garbage; with 20 ms, 30-90 slots a second went unused in
 * the delivery benchmark, with 50 ms 0-30. Its own arrivals stay within the limit (the answer
 * log); on top of other processes' calls, one that fell behind can add this much of the rate
 * (5%) to a second.
 */
const OWN_SLOT_KEEP_MS = 50
/** The longest a process sleeps before asking the schedule again. */
const MAX_WAIT_MS = 250

/**
 * Paces calls to LINE's limit of `perSecond` in any sliding second, counted as LINE counts them:
 * on arrival, which for any call falls between its start and its answer (a call given up on,
 * after LINE_TIMEOUT_MS, is counted as answered then: a request that reaches LINE even later is
 * the one case this does not cover). Two layers.
 *
 * Globally, slots from the shared schedule in Redis (GCRA), `perSecond` a second, reserved up to
 * 20 ms ahead and topped up before they run out: ~90 Redis calls a second at 2,000 sends.
 *
 * Locally, a call starts only while fewer than `perSecond` of this process's calls could arrive in
 * a second that contains its start: the calls under way and those answered within the last
 * second. That bound is exact. A one-second window's arrivals all started by its last start, s,
 * and were answered after the window opened, after s − 1 s; at s they were all counted. So one
 * process never has more than `perSecond` arrivals in any second, whether LINE is slow, a burst
 * catches up or the event loop stalls, and it gives up only each call's answer time (at 4 ms,
 * 0.4% of the rate) rather than a fixed share for the calls that may be under way. With several
 * processes, the starts keep to the shared schedule, but a second can also receive each one's
 * calls under way, LATE_SLOT_MS of catching up and OWN_SLOT_KEEP_MS of slots used late (LINE
 * answers that with a 429, which backs those deliveries off).
 */
export function createSharedLimiter(redis: Redis, opts: SharedLimiterOptions): SharedLimiter {
  if (!(Number.isInteger(opts.perSecond) && opts.perSecond >= 1)) {
    throw new Error('a shared limiter needs a whole perSecond of at least 1')
  }
  if (!(Number.isInteger(opts.inFlight) && opts.inFlight >= 1)) {
    throw new Error('a shared limiter needs a whole inFlight of at least 1')
  }
  const limit = opts.perSecond
  const inFlight = Math.min(opts.inFlight, limit)
  const intervalMs = 1000 / limit
  const chunk = Math.max(1, Math.floor(HORIZON_MS / intervalMs))
  const horizonMs = Math.max(HORIZON_MS, intervalMs)
  /**
   * When this process's calls of the last second were answered, oldest first (answers come in
   * order of time, so appending keeps it sorted). A ring of `limit`: never more are counted.
   */
  const answered = new Float64Array(limit)
  let answeredHead = 0
  let answeredCount = 0
  /**
   * Local times of reserved, unused slots: in order within a refill, and a later refill's are
   * never earlier by more than an event-loop pause (each is timed from its own answer).
   */
  const slots: number[] = []
  /** Calls not started yet, oldest first, with when each began to wait. */
  const waiting: { start: () => void; fail: (error: Error) => void; since: number }[] = []
  let active = 0
  let callEnded: (() => void) | null = null
  let running = false
  let refilling: Promise<void> | null = null
  const redisWaitMs = opts.redisWaitMs ?? Number.POSITIVE_INFINITY
  /** When the schedule last answered (local clock), and why the asks since then failed. */
  let heardAt = Number.NEGATIVE_INFINITY
  let lastError: unknown = null

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
      heardAt = performance.now()
      lastError = null
      // Slot times on this clock, counted from the answer: never earlier than Redis meant.
      const at = performance.now() + Number(firstIn)
      for (let i = 0; i < granted; i++) slots.push(at + i * intervalMs)
      // Capped: whatever the schedule says, ask again soon rather than sleep on a stale answer.
      if (granted === 0) {
        await sleep(Math.min(Number(waitMs), MAX_WAIT_MS))
        // Its answer held until now: the sleep is not time Redis left unanswered.
        heardAt = performance.now()
      }
    } catch (error) {
      // Redis away: callers wait (up to redisWaitMs) rather than exceed LINE's limit.
      lastError = error
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

  /**
   * How long until a call may start without a second holding more than `limit` of this
   * process's arrivals (0: now). Calls answered a second ago or more no longer count.
   */
  function arrivalsWait(now: number): number {
    while (answeredCount > 0 && answered[answeredHead]! <= now - 1000) {
      answeredHead = (answeredHead + 1) % limit
      answeredCount -= 1
    }
    if (active + answeredCount < limit) return 0
    // At least a little: within a rounding step of the second, the difference can come out 0.
    return Math.max(answered[answeredHead]! + 1000 - now, 0.001)
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
      while (slots.length > 0 && slots[0]! < now - OWN_SLOT_KEEP_MS) slots.shift()
      // First, the call must not make a second hold more than `limit` of this process's
      // arrivals. Until it can, no slots are reserved: they would expire unused, lost to the
      // other processes too.
      const full = arrivalsWait(now)
      if (full > 0) {
        await sleep(full)
        continue
      }
      const refilled = topUp(now)
      if (slots.length === 0) {
        await untilAnswered(refilled, now)
        continue
      }
      // The next slot has come, within a timer's resolution (early by a little, each call of a
      // bunch would be early).
      if (slots[0]! > now + 0.5) {
        await sleep(slots[0]! - now)
        continue
      }
      slots.shift()
      waiting.shift()!.start()
    }
    running = false
  }

  /**
   * Waits for the refill, or until the oldest call has waited redisWaitMs since the schedule
   * last answered (a silent Redis can keep a command 15 s), and rejects the calls that have.
   */
  async function untilAnswered(refilled: Promise<void> | null, now: number): Promise<void> {
    if (!Number.isFinite(redisWaitMs)) return void (await refilled)
    const deadline = (since: number) => Math.max(since, heardAt) + redisWaitMs
    const left = Math.max(deadline(waiting[0]!.since) - now, 1)
    await withTimeout(Promise.resolve(refilled), left, 'slot').catch(() => {})
    const at = performance.now()
    // Oldest first: once one has waited less, so have the rest.
    while (waiting.length > 0 && deadline(waiting[0]!.since) <= at) {
      waiting.shift()!.fail(new PacingUnavailable(opts.key, redisWaitMs, lastError))
    }
  }

  function ended(): void {
    // Stamped once the answer came, so never before the call arrived, and before the caller's
    // code goes on.
    const at = performance.now()
    active -= 1
    // Room: a call starts only while active + answeredCount < limit.
    answered[(answeredHead + answeredCount) % limit] = at
    answeredCount += 1
    const wake = callEnded
    callEnded = null
    wake?.()
  }

  return {
    run<T>(call: () => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const start = () => {
          active += 1
          let result: Promise<T>
          try {
            // Started now; a caller handing back a plain value or a foreign thenable must not
            // break the pump.
            result = Promise.resolve(call())
          } catch (error) {
            result = Promise.reject(error)
          }
          result.then(
            (value) => {
              ended()
              resolve(value)
            },
            (error: unknown) => {
              ended()
              reject(error)
            },
          )
        }
        waiting.push({ start, fail: reject, since: performance.now() })
        void pump()
      })
    },
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.ceil(ms))))
}
