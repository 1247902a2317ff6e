import { Hono } from 'hono'
import { sql } from 'kysely'
import { connectionsAllAtWork, type Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { isUnavailableError } from '../platform/errors.ts'
import type { AppEnv } from '../platform/http.ts'
import type { Logger } from '../platform/logger.ts'
import { TimeoutError, withTimeout } from '../platform/timeout.ts'
import { metricsAccess } from './metrics-access.ts'

const CHECK_TIMEOUT_MS = 2_000
/** How long one readiness answer is given again, to every probe that asks meanwhile. */
const ANSWER_KEPT_MS = 1_000

/**
 * `/readyz` says whether the process can do its work. HTTP needs only Postgres: without Redis
 * the webhook still stores events (the sweeper queues them later) and scans are recorded, so a
 * process that serves HTTP stays ready, `degraded`. A load balancer that took it out would
 * answer LINE itself with an error, and with LINE's redelivery off those events were lost.
 * A ROLE=worker process can do nothing without Redis. Both stay public (load balancers probe them);
 * `/metrics` does not (see metricsAccess). Being public, `/readyz` says each dependency's state
 * in fixed words (the errors' own text names internal hosts and roles); the cause is logged.
 * Probes asking at once share one check, and its answer is given again for ANSWER_KEPT_MS: a
 * query and a PING per probe made the public endpoint a way to load Postgres and Redis.
 */
export function opsRoutes(deps: Pick<Deps, 'db' | 'redis' | 'metrics' | 'env' | 'log'>) {
  const needsRedis = deps.env.ROLE === 'worker'
  const checkPostgres = createCheck(deps.log, 'postgres', () => probePostgres(deps.db))
  const checkRedis = createCheck(deps.log, 'redis', async () => {
    await withTimeout(pingRedis(deps.redis), CHECK_TIMEOUT_MS, 'readiness check of redis')
    return 'ok'
  })
  const readiness = sharedFor(ANSWER_KEPT_MS, async () => {
    const [postgres, redis] = await Promise.all([checkPostgres(), checkRedis()])
    // A busy pool is Postgres at work: a load balancer taking the process out would not help.
    const ready = (postgres === 'ok' || postgres === 'busy') && (redis === 'ok' || !needsRedis)
    const status = !ready ? 'unavailable' : redis === 'ok' ? 'ready' : 'degraded'
    return { ready, body: { status, postgres, redis } }
  })
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      const { ready, body } = await readiness()
      return c.json(body, ready ? 200 : 503)
    })
    .get('/metrics', metricsAccess(deps.env), async (c) => {
      c.header('content-type', deps.metrics.registry.contentType)
      return c.body(await deps.metrics.registry.metrics())
    })
}

/**
 * `fn`'s answer, shared by every caller while it runs and given again for `keptMs` after
 * (`fn` does not reject).
 */
function sharedFor<T>(keptMs: number, fn: () => Promise<T>): () => Promise<T> {
  let latest: { answer: Promise<T>; settledAt?: number } | undefined
  return () => {
    const settledAt = latest?.settledAt
    if (latest && (settledAt === undefined || performance.now() - settledAt < keptMs)) {
      return latest.answer
    }
    const current: { answer: Promise<T>; settledAt?: number } = { answer: fn() }
    const settled = () => {
      current.settledAt = performance.now()
    }
    current.answer.then(settled, settled)
    latest = current
    return current.answer
  }
}

/**
 * Postgres's check, on a connection of the pool. Waiting past the time limit while every
 * connection is at work (connectionsAllAtWork) is `busy`, not a `timeout`: the pool waits for
 * work, not for Postgres, and a `timeout` there made a load balancer take a loaded, healthy
 * process out. A query that got its connection and no answer, or a connection still being made,
 * is a `timeout` as before.
 */
async function probePostgres(db: Deps['db']): Promise<'ok' | 'busy'> {
  let connected = false
  const probe = db.connection().execute(async (conn) => {
    connected = true
    await assertWritable(conn)
  })
  try {
    await withTimeout(probe, CHECK_TIMEOUT_MS, 'readiness check of postgres')
    return 'ok'
  } catch (error) {
    if (error instanceof TimeoutError && !connected && connectionsAllAtWork(db)) return 'busy'
    throw error
  }
}

/**
 * Not ready for Postgres: it answers but cannot write (webhooks and scans would get 503s). A
 * pool still on a failed-over primary, now a standby (in recovery), or a server or role set
 * read-only (transaction_read_only): `select 1` works on both. One round trip.
 */
async function assertWritable(db: Db): Promise<void> {
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
type CheckWord = 'ok' | 'busy' | 'unreachable' | 'timeout' | 'failed'

/**
 * A readiness probe of one dependency. A failure is logged when it starts or changes (load
 * balancers probe every few seconds: a line per probe would bury the cause), with the error
 * (the logger drops what a database error quotes from rows; hosts and roles are the operator's).
 */
function createCheck(log: Logger, name: string, probe: () => Promise<'ok' | 'busy'>) {
  let last: CheckWord = 'ok'
  return async (): Promise<CheckWord> => {
    let word: CheckWord
    let cause: unknown
    try {
      word = await probe()
    } catch (error) {
      cause = error
      word =
        error instanceof TimeoutError
          ? 'timeout'
          : error instanceof NotConnected || isUnavailableError(error)
            ? 'unreachable'
            : 'failed'
    }
    if (word !== 'ok' && word !== 'busy' && word !== last)
      log.warn({ err: cause }, `readiness: ${name} ${word}`)
    last = word
    return word
  }
}
