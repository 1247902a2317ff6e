import { Hono } from 'hono'
import { sql } from 'kysely'
import type { Deps } from '../platform/deps.ts'
import type { AppEnv } from '../platform/http.ts'
import { withTimeout } from '../platform/timeout.ts'

const CHECK_TIMEOUT_MS = 2_000

export function opsRoutes(deps: Pick<Deps, 'db' | 'redis' | 'metrics'>) {
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      const [postgres, redis] = await Promise.all([
        check(() => sql`select 1`.execute(deps.db)),
        check(() => deps.redis.ping()),
      ])
      const ready = postgres === 'ok' && redis === 'ok'
      return c.json({ status: ready ? 'ready' : 'unavailable', postgres, redis }, ready ? 200 : 503)
    })
    .get('/metrics', async (c) => {
      c.header('content-type', deps.metrics.registry.contentType)
      return c.body(await deps.metrics.registry.metrics())
    })
}

async function check(probe: () => Promise<unknown>): Promise<string> {
  try {
    await withTimeout(probe(), CHECK_TIMEOUT_MS, 'readiness check')
    return 'ok'
  } catch (error) {
    return error instanceof Error ? error.message : 'failed'
  }
}
