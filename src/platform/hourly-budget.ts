import { randomUUID } from 'node:crypto'
import type { Redis } from './redis.ts'

/**
 * LINE's endpoints limited per hour rather than per second (LINE-API.md §4): creating and
 * deleting rich menus, deleting aliases. The limits are per channel.
 */
export const HOURLY_LIMITS: Readonly<Record<string, number>> = {
  'richmenu-create': 100,
  'richmenu-delete': 100,
  'richmenu-alias-delete': 100,
}

const HOUR_MS = 3_600_000

/**
 * A log of the last hour's calls in a sorted set, on Redis's clock: at most `limit` in any
 * 60 minutes (so in any clock hour too, however LINE counts). Returns 0 when the call may go
 * (and counts it), else the ms until the oldest call leaves the hour.
 */
const TAKE_SCRIPT = `
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
`

type TakeCommand = {
  kizunaTakeHourly(key: string, windowMs: number, limit: number, member: string): Promise<number>
}

/** A call Kizuna held back because the channel used the endpoint's hourly budget. */
export class HourlyLimitReached extends Error {
  readonly endpoint: string
  /** When the budget has room again. */
  readonly retryInMs: number
  constructor(endpoint: string, limit: number, retryInMs: number) {
    super(
      `${endpoint}: LINE allows ${limit} an hour and this channel used them; ` +
        `room again in ${Math.ceil(retryInMs / 60_000)} min`,
    )
    this.name = 'HourlyLimitReached'
    this.endpoint = endpoint
    this.retryInMs = retryInMs
  }
}

export type HourlyBudget = {
  /** Counts one call to `endpoint` when it has an hourly limit; throws HourlyLimitReached. */
  take(endpoint: string): Promise<void>
}

/**
 * One budget per channel for every process (workers and the CLI alike), in Redis under
 * `keyPrefix`. A call is counted before it is sent, whatever LINE answers: a timed-out call may
 * have reached LINE and counted there.
 */
export function createHourlyBudget(redis: Redis, keyPrefix: string): HourlyBudget {
  const commands = redis as unknown as Redis & TakeCommand
  if (!('kizunaTakeHourly' in commands)) {
    redis.defineCommand('kizunaTakeHourly', { numberOfKeys: 1, lua: TAKE_SCRIPT })
  }
  return {
    async take(endpoint) {
      const limit = HOURLY_LIMITS[endpoint]
      if (limit === undefined) return
      const key = `${keyPrefix}:line-limit-hourly:${endpoint}`
      const wait = await commands.kizunaTakeHourly(key, HOUR_MS, limit, randomUUID())
      if (wait > 0) throw new HourlyLimitReached(endpoint, limit, wait)
    },
  }
}
