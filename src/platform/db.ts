import { mkdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import {
  type DatabaseConnection,
  Kysely,
  PostgresDialect,
  type PostgresDialectConfig,
  PostgresDriver,
  type Transaction,
} from 'kysely'
import pg from 'pg'
import type { Env } from '../config/env.ts'
import { lockDataDir } from './data-dir-lock.ts'
import type { DB } from './db.generated.ts'
import { isConnectionError } from './errors.ts'
import type { Logger } from './logger.ts'
import { createOutage, type Outage } from './outage.ts'
import { pgliteDialect } from './pglite-dialect.ts'
import { PreparingClient, registerPreparedDb } from './prepared.ts'
import { watchStalledConnections } from './stalled-connections.ts'

export type { DB }
export type Database = Kysely<DB>
export type Db = Kysely<DB> | Transaction<DB>

/** Runs `fn` in the caller's transaction, or in a new one. */
export function inTransaction<T>(db: Db, fn: (trx: Transaction<DB>) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db as Transaction<DB>) : db.transaction().execute(fn)
}

const embeddedDirs = new WeakMap<Database, string>()
const pools = new WeakMap<Database, pg.Pool>()

/**
 * The folder of the embedded PGlite database `db` runs on (undefined on Postgres). PGlite has one
 * session: whatever holds a connection holds up every other query of the process.
 */
export function embeddedDataDir(db: Database): string | undefined {
  return embeddedDirs.get(db)
}

/**
 * Whether a query waiting for a connection of `db` waits for other work rather than for Postgres:
 * every connection its pool may have is connected and in use (none idle, none being made, no room
 * for another). Always for the embedded database: whatever holds its one session is work.
 */
export function connectionsAllAtWork(db: Database): boolean {
  if (embeddedDirs.has(db)) return true
  const pool = pools.get(db)
  if (!pool) return false
  const clients = clientsOf(pool)
  return (
    pool.idleCount === 0 &&
    clients.length >= (pool.options.max ?? Number.POSITIVE_INFINITY) &&
    clients.every((c) => c.processID !== null)
  )
}

// int8 (count(*), sums) as strings on both engines, like node-postgres does by default.
const INT8_OID = 20
// A `date` (a birthday: a day, not an instant) as its text, 'YYYY-MM-DD', on both engines
// (kysely-codegen's dateParser `string`, package.json): node-postgres read it as local midnight
// and PGlite as UTC midnight, so west of UTC a profile showed PGlite's birthdays a day early.
const DATE_OID = 1082
const asText = (value: string) => value
const pgTypes = new pg.TypeOverrides()
pgTypes.setTypeParser(DATE_OID, 'text', asText)

export async function createDb(
  env: Pick<Env, 'DATABASE_URL' | 'DATA_DIR'>,
  opts: {
    poolSize?: number
    /**
     * Says when connections Postgres no longer answered on were closed, or when another process
     * took over the embedded database's lock.
     */
    log?: Logger
    /** See watchStalledConnections (tests shorten it). */
    stalledAfterMs?: number
  } = {},
): Promise<Database> {
  if (env.DATABASE_URL) {
    const size = opts.poolSize ?? 20
    const outage = opts.log
      ? createOutage(opts.log, {
          name: 'Postgres',
          envVar: 'DATABASE_URL',
          url: env.DATABASE_URL,
          meanwhile:
            'the webhook answers 503 (LINE knows the events were not stored), APIs answer 503, ' +
            'and jobs are retried',
        })
      : undefined
    const pool = createPool(env.DATABASE_URL, size, { outage })
    // Prepared statements get connections of their own that always use the generic plan: with
    // the default (`auto`) Postgres went on planning the register scan's statement at every
    // execution (~1.2 ms of the ~3.4 ms it cost), as custom plans looked cheaper on paper. Only
    // there: other statements keep per-value plans (a generic plan cannot use a partial index
    // such as `where status = 'pending'` for `status = $1`).
    const preparedSize = Math.max(1, Math.ceil(size / 2))
    // Its connections stay open once made: each holds its statements parsed and planned, and a
    // new one paid ~40 ms of parsing and planning before its first scan. With the default 10 s
    // idle timeout, the connections a burst of scans opened closed again in the next quiet
    // moment, and the next burst waited on new ones (the pos-scan benchmark's worst scans).
    const preparedPool = createPool(env.DATABASE_URL, preparedSize, {
      options: '-c plan_cache_mode=force_generic_plan',
      min: preparedSize,
      outage,
    })
    const watch = watchStalledConnections({
      connectionString: env.DATABASE_URL,
      clients: () => [...clientsOf(pool), ...clientsOf(preparedPool)],
      stalledAfterMs: opts.stalledAfterMs,
      log: opts.log,
    })
    const endMain = pool.end.bind(pool)
    pool.end = (async () => {
      watch.stop()
      await preparedPool.end()
      await endMain()
    }) as typeof pool.end
    const db = new Kysely<DB>({ dialect: new PoolDialect({ pool }) })
    registerPreparedDb(db, new Kysely<DB>({ dialect: new PoolDialect({ pool: preparedPool }) }))
    pools.set(db, pool)
    return db
  }
  const { PGlite } = await import('@electric-sql/pglite')
  const dataDir = resolve(env.DATA_DIR, 'pglite')
  await mkdir(dataDir, { recursive: true })
  const release = await lockDataDir(resolve(env.DATA_DIR), {
    onLost: () =>
      opts.log?.error(
        'the embedded database lock was taken over by another process: stop this one',
      ),
  })
  let embedded: Awaited<ReturnType<typeof PGlite.create>>
  try {
    embedded = await PGlite.create(dataDir, {
      parsers: { [INT8_OID]: asText, [DATE_OID]: asText },
    })
  } catch (error) {
    await release()
    throw error
  }
  const db = new Kysely<DB>({ dialect: pgliteDialect(embedded) })
  embeddedDirs.set(db, dataDir)
  const destroy = db.destroy.bind(db)
  db.destroy = async () => {
    await destroy()
    await release()
  }
  return db
}

/** The pool's connections, idle and in use (pg-pool keeps no public list). */
function clientsOf(pool: pg.Pool): PreparingClient[] {
  return (pool as unknown as { _clients: PreparingClient[] })._clients
}

/**
 * Kysely's Postgres dialect, but a transaction that failed on a connection now gone fails with
 * its own error: Kysely rolls back on that connection, and the rollback's error ("Client has
 * encountered a connection error and is not queryable", or "Client was closed…" when
 * PreparingClient closed it for a stale statement) took the place of the one that ended it (a
 * 57P01 the outage logged, the stale statement's 0A000), so the cause was lost and an outage's
 * request logged a line of its own. With the connection gone, so is its transaction.
 */
class PoolDialect extends PostgresDialect {
  readonly #config: PostgresDialectConfig
  constructor(config: PostgresDialectConfig) {
    super(config)
    this.#config = config
  }
  override createDriver() {
    return new PoolDriver(this.#config)
  }
}

class PoolDriver extends PostgresDriver {
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await super.rollbackTransaction(connection)
    } catch (error) {
      if (!isConnectionError(error) && !isClosedClient(error)) throw error
    }
  }
}

/** node-postgres refusing a query on a client end() was called on. */
const isClosedClient = (error: unknown) =>
  error instanceof Error && error.message === 'Client was closed and is not queryable'

/**
 * `options`: server settings for every connection (`-c name=value`); `min`: how many idle
 * connections stay open (above it, an idle connection closes after 10 s); `outage`: told when
 * connecting fails and succeeds (see PreparingClient.connect).
 */
function createPool(
  connectionString: string,
  max: number,
  extra: { options?: string; min?: number; outage?: Outage } = {},
): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max,
    min: extra.min ?? 0,
    connectionTimeoutMillis: 5_000,
    Client: PreparingClient as unknown as typeof pg.Client,
    types: pgTypes,
    ...(extra.options ? { options: extra.options } : {}),
    ...(extra.outage ? { outage: extra.outage } : {}),
  })
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it. Queries report their own errors.
  })
  return pool
}
