import { Hono } from 'hono'
import { sql } from 'kysely'
import type { Deps } from '../platform/deps.ts'
import { isUnavailableError } from '../platform/errors.ts'
import type { AppEnv } from '../platform/http.ts'
import type { Logger } from '../platform/logger.ts'
import { TimeoutError, withTimeout } from '../platform/timeout.ts'
import { metricsAccess } from './metrics-access.ts'

const CHECK_TIMEOUT_MS = 2_000

/**
 * `/readyz` says whether the process can do its work. HTTP needs only Postgres: without Redis
 * the webhook still stores events (the sweeper queues them later) and scans are recorded, so a
 * process that serves HTTP stays ready, `degraded`. A load balancer that took it out would
 * answer LINE itself with an error, and with LINE's redelivery off those events were lost.
 * A ROLE=worker process can do nothing without Redis. Both stay public (load balancers probe them);
 * `/metrics` does not (see metricsAccess). Being public, `/readyz` says each dependency's state
 * in fixed words (the errors' own text names internal hosts and roles); the cause is logged.
 */
export function opsRoutes(deps: Pick<Deps, 'db' | 'redis' | 'metrics' | 'env' | 'log'>) {
  const needsRedis = deps.env.ROLE === 'worker'
  const checkPostgres = createCheck(deps.log, 'postgres', () => assertWritable(deps.db))
  const checkRedis = createCheck(deps.log, 'redis', () => pingRedis(deps.redis))
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      const [postgres, redis] = await Promise.all([checkPostgres(), checkRedis()])
      const ready = postgres === 'ok' && (redis === 'ok' || !needsRedis)
      const status = !ready ? 'unavailable' : redis === 'ok' ? 'ready' : 'degraded'
      return c.json({ status, postgres, redis }, ready ? 200 : 503)
    })
    .get('/metrics', metricsAccess(deps.env), async (c) => {
      c.header('content-type', deps.metrics.registry.contentType)
      return c.body(await deps.metrics.registry.metrics())
    })
}

/**
 * Not ready for Postgres: it answers but cannot write (webhooks and scans would get 503s). A
 * pool still on a failed-over primary, now a standby (in recovery), or a server or role set
 * read-only (transaction_read_only): `select 1` works on both. One round trip.
 */
async function assertWritable(db: Deps['db']): Promise<void> {
  const { rows } = await sql<{ recovery: boolean; readOnly: string }>`
    select pg_is_in_recovery() as recovery,
      current_setting('transaction_read_only') as "readOnly"`.execute(db)
  const [state] = rows
  if (state?.recovery) throw new ReadOnly('Postgres is read-only: a standby (in recovery)')
  if (state?.readOnly !== 'off') {
    throw new ReadOnly(
      'Postgres is read-only: transaction_read_only is on (a read-only server, role or database)',
    )
  }
}

class ReadOnly extends Error {
  override name = 'ReadOnly'
}

/** Not ready for Redis: it is not connected (ioredis's own words say little). */
async function pingRedis(redis: Deps['redis']): Promise<unknown> {
  if (redis.status !== 'ready')
    throw new NotConnected(`not connected to REDIS_URL (${redis.status})`)
  return redis.ping()
}

class NotConnected extends Error {
  override name = 'NotConnected'
}

/** A dependency's state as `/readyz` says it. */
type CheckWord = 'ok' | 'unreachable' | 'timeout' | 'failed'

/**
 * A readiness probe of one dependency. A failure is logged when it starts or changes (load
 * balancers probe every few seconds: a line per probe would bury the cause), with the error
 * (the logger drops what a database error quotes from rows; hosts and roles are the operator's).
 */
function createCheck(log: Logger, name: string, probe: () => Promise<unknown>) {
  let last: CheckWord = 'ok'
  return async (): Promise<CheckWord> => {
    let word: CheckWord = 'ok'
    let cause: unknown
    try {
      await withTimeout(probe(), CHECK_TIMEOUT_MS, `readiness check of ${name}`)
    } catch (error) {
      cause = error
      word =
        error instanceof TimeoutError
          ? 'timeout'
          : error instanceof NotConnected || isUnavailableError(error)
            ? 'unreachable'
            : 'failed'
    }
    if (word !== 'ok' && word !== last) log.warn({ err: cause }, `readiness: ${name} ${word}`)
    last = word
    return word
  }
}
