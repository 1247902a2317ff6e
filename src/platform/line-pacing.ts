import { HOURLY_LIMITS } from './hourly-budget.ts'
import type { Redis } from './redis.ts'
import { createSharedLimiter, type SharedLimiter } from './shared-limiter.ts'

/**
 * LINE's per-second limits (LINE-API.md §2.5) other than its default, by the endpoint names
 * Kizuna's callers give (`line.call`, and the delivery engine's sends: createLineLimiters). LINE counts each endpoint and method apart; one name
 * may cover two of them (`richmenu.link`: the per-user link and the bulk link), which then share
 * one limit: never over either. An endpoint limited per hour (HOURLY_LIMITS) is not paced per
 * second: the hourly budget counts it.
 */
export const LINE_CALL_RATES: Readonly<Record<string, number>> = {
  multicast: 200,
  'richmenu-list': 10,
}

/** LINE's limit for "everything else": profile, link and unlink, link token, validate, ... */
export const LINE_DEFAULT_RATE = 2_000

export type LinePacing = {
  /** Runs `call` at its endpoint's next slot, shared by every process on the same Redis. */
  run<T>(endpoint: string, call: () => Promise<T>): Promise<T>
  /** The endpoint's limiter (null: an hourly endpoint, not paced per second). */
  limiter(endpoint: string): SharedLimiter | null
}

export type LinePacingOptions = {
  /** The most calls of one endpoint this process has under way at once. */
  inFlight: number
  /** Limits other than LINE's, by endpoint (push and reply: LINE_PUSH_RATE_PER_SECOND; tests). */
  rates?: Readonly<Record<string, number>>
  /**
   * How long a call waits for a Redis that does not answer before it fails, unsent
   * (PacingUnavailable): REDIS_WAIT_MS unless given; `Infinity` waits however long.
   */
  redisWaitMs?: number
}

/**
 * While Redis does not answer, a call gives up after this long: a transient failure its job is
 * retried for, rather than a job, a webhook lane or a deploy (holding its lock) held for as long
 * as the outage lasts, or a shutdown held past its 30 s. Long enough for a reconnect (every 2 s
 * at most) after a restart or a failover.
 */
export const REDIS_WAIT_MS = 5_000

/**
 * One shared limiter per LINE endpoint for every process on this Redis, under
 * `<keyPrefix>:line-limit:<endpoint>` (LINE's limits are per channel, not per process: DESIGN.md
 * "one shared limiter across all workers"). Made on first use.
 */
export function createLinePacing(
  redis: Redis,
  keyPrefix: string,
  opts: LinePacingOptions,
): LinePacing {
  const limiters = new Map<string, SharedLimiter | null>()
  const limiter = (endpoint: string): SharedLimiter | null => {
    let found = limiters.get(endpoint)
    if (found === undefined) {
      const perSecond =
        opts.rates?.[endpoint] ??
        (endpoint in HOURLY_LIMITS ? null : (LINE_CALL_RATES[endpoint] ?? LINE_DEFAULT_RATE))
      found =
        perSecond === null
          ? null
          : createSharedLimiter(redis, {
              key: `${keyPrefix}:line-limit:${endpoint}`,
              perSecond,
              inFlight: opts.inFlight,
              redisWaitMs: opts.redisWaitMs ?? REDIS_WAIT_MS,
            })
      limiters.set(endpoint, found)
    }
    return found
  }
  return {
    limiter,
    run(endpoint, call) {
      const paced = limiter(endpoint)
      return paced ? paced.run(call) : call()
    },
  }
}
