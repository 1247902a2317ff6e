/** A token bucket: `capacity` requests per `perMs` milliseconds, refilled continuously. */
export type RateLimit = { capacity: number; perMs: number }

/** Overrides keyed `'<METHOD> <spec path template>'`, e.g. `'POST /v2/bot/message/push'`; `null` disables. */
export type RateLimitOverrides = Partial<Record<string, RateLimit | null>>

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE

/** LINE's per-channel limits (LINE-API.md §2.5); anything not listed gets `DEFAULT_RATE_LIMIT`. */
export const LINE_RATE_LIMITS: Readonly<Record<string, RateLimit>> = {
  'POST /v2/bot/message/narrowcast': { capacity: 60, perMs: HOUR },
  'POST /v2/bot/message/broadcast': { capacity: 60, perMs: HOUR },
  'POST /v2/bot/channel/webhook/test': { capacity: 60, perMs: HOUR },
  'PUT /v2/bot/channel/webhook/endpoint': { capacity: 1000, perMs: MINUTE },
  'GET /v2/bot/channel/webhook/endpoint': { capacity: 1000, perMs: MINUTE },
  'POST /v2/bot/richmenu': { capacity: 100, perMs: HOUR },
  'DELETE /v2/bot/richmenu/{richMenuId}': { capacity: 100, perMs: HOUR },
  'DELETE /v2/bot/richmenu/alias/{richMenuAliasId}': { capacity: 100, perMs: HOUR },
  'GET /v2/bot/richmenu/progress/batch': { capacity: 100, perMs: HOUR },
  'POST /v2/bot/richmenu/batch': { capacity: 3, perMs: HOUR },
  'GET /v2/bot/richmenu/list': { capacity: 10, perMs: SECOND },
  'POST /v2/bot/message/multicast': { capacity: 200, perMs: SECOND },
  'POST /v2/bot/chat/loading/start': { capacity: 100, perMs: SECOND },
}

export const DEFAULT_RATE_LIMIT: RateLimit = { capacity: 2000, perMs: SECOND }

type Bucket = { limit: RateLimit; tokens: number; updatedAt: number }

export type RateLimiter = {
  /** Takes one token for `key`; false when the bucket is empty (→ 429). */
  take(key: string): boolean
  /** Changes (or with `null` disables) one endpoint's limit at runtime; the bucket starts full. */
  set(key: string, limit: RateLimit | null): void
}

export function createRateLimiter(overrides: RateLimitOverrides, now: () => number): RateLimiter {
  const limits = new Map<string, RateLimit | null>()
  for (const [key, limit] of Object.entries(overrides))
    if (limit !== undefined) limits.set(key, limit)
  const buckets = new Map<string, Bucket>()
  const limitFor = (key: string): RateLimit | null => {
    const override = limits.get(key)
    if (override !== undefined) return override
    return LINE_RATE_LIMITS[key] ?? DEFAULT_RATE_LIMIT
  }
  return {
    take(key) {
      const limit = limitFor(key)
      if (!limit) return true
      const at = now()
      let bucket = buckets.get(key)
      if (!bucket || bucket.limit !== limit) {
        bucket = { limit, tokens: limit.capacity, updatedAt: at }
        buckets.set(key, bucket)
      }
      const elapsed = Math.max(0, at - bucket.updatedAt)
      bucket.tokens = Math.min(
        limit.capacity,
        bucket.tokens + (elapsed * limit.capacity) / limit.perMs,
      )
      bucket.updatedAt = at
      if (bucket.tokens < 1) return false
      bucket.tokens -= 1
      return true
    },
    set(key, limit) {
      limits.set(key, limit)
      buckets.delete(key)
    },
  }
}
