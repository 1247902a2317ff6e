import { Hono } from 'hono'
import { sql } from 'kysely'
import type { Deps } from '../platform/deps.ts'
import type { AppEnv } from '../platform/http.ts'
import { withTimeout } from '../platform/timeout.ts'
import { metricsAccess } from './metrics-access.ts'

const CHECK_TIMEOUT_MS = 2_000

/**
 * `/readyz` says whether the process can do its work. HTTP needs only Postgres: without Redis
 * the webhook still stores events (the sweeper queues them later) and scans are recorded, so a
 * process that serves HTTP stays ready, `degraded`. A load balancer that took it out would
 * answer LINE itself with an error, and with LINE's redelivery off those events were lost.
 * A ROLE=worker process can do nothing without Redis. Both stay public (load balancers probe them);
 * `/metrics` does not (see metricsAccess).
 */
export function opsRoutes(deps: Pick<Deps, 'db' | 'redis' | 'metrics' | 'env'>) {
  const needsRedis = deps.env.ROLE === 'worker'
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      const [postgres, redis] = await Promise.all([
        check(() => sql`select 1`.execute(deps.db)),
        check(() => pingRedis(deps.redis)),
      ])
      const ready = postgres === 'ok' && (redis === 'ok' || !needsRedis)
      const status = !ready ? 'unavailable' : redis === 'ok' ? 'ready' : 'degraded'
      return c.json({ status, postgres, redis }, ready ? 200 : 503)
    })
    .get('/metrics', metricsAccess(deps.env), async (c) => {
      c.header('content-type', deps.metrics.registry.contentType)
      return c.body(await deps.metrics.registry.metrics())
    })
}

/** ioredis's own words for a closed connection ("Stream isn't writeable…") say little. */
async function pingRedis(redis: Deps['redis']): Promise<unknown> {
  if (redis.status !== 'ready') throw new Error(`not connected to REDIS_URL (${redis.status})`)
  return redis.ping()
}

async function check(probe: () => Promise<unknown>): Promise<string> {
  try {
    await withTimeout(probe(), CHECK_TIMEOUT_MS, 'readiness check')
    return 'ok'
  } catch (error) {
    return error instanceof Error ? error.message : 'failed'
  }
}
