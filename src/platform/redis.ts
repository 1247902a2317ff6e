import { Redis } from 'ioredis'

export type { Redis }

/** Producers fail fast while Redis is away (the webhook must still answer). */
export function createProducerRedis(url: string): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  })
  redis.on('error', () => {
    // Reported through readiness checks and failed commands; reconnection is automatic.
  })
  return redis
}

/** Workers wait for Redis to come back (BullMQ requires maxRetriesPerRequest: null). */
export function createWorkerRedis(url: string): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  })
  redis.on('error', () => {
    // Workers log their own connection errors through worker.on('error').
  })
  return redis
}

/** Start-up check: a missing or unreachable Redis stops the process with a clear message. */
export async function assertRedisReachable(url: string, timeoutMs = 3_000): Promise<void> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
  })
  redis.on('error', () => {})
  try {
    await redis.connect()
    await redis.ping()
  } catch (error) {
    // ioredis's own messages may end with a period ("Connection is closed.").
    const why = (error instanceof Error ? error.message : String(error)).replace(/\.+$/, '')
    throw new Error(
      `Redis is unreachable at REDIS_URL (${redactUrl(url)}): ${why}. ` +
        'Start Redis or set REDIS_URL to a reachable server.',
    )
  } finally {
    redis.disconnect()
  }
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(unparseable)'
  }
}
