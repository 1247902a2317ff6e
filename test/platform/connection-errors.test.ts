import { HTTPFetchError } from '@line/bot-sdk'
import { Hono } from 'hono'
import { Redis, type RedisOptions } from 'ioredis'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import {
  isConnectionError,
  isTimedOutStatement,
  isUnavailableError,
} from '../../src/platform/errors.ts'
import { type AppEnv, onError, requestContext } from '../../src/platform/http.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { createMetrics } from '../../src/platform/metrics.ts'
import { TimeoutError } from '../../src/platform/timeout.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'

// What real Postgres errors are taken for: Postgres away or unable to write (an import stops, a
// request is a 503), a statement it gave up on (run again), or something of this input's.

let db: Database
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }), { poolSize: 2 })
})
afterAll(async () => {
  await db.destroy()
})

/** The error `statement` fails with on a connection of its own, after `setup`. */
async function errorOf(statement: string, setup: string[] = []): Promise<unknown> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL })
  client.on('error', () => {})
  await client.connect()
  try {
    for (const s of setup) await client.query(s)
    await client.query(statement)
  } catch (error) {
    return error
  } finally {
    await client.end().catch(() => {})
  }
  throw new Error(`${statement} did not fail`)
}

/** A table of this test's own, and a transaction on another connection holding its row. */
async function lockedRow() {
  const table = `t_${Math.random().toString(36).slice(2, 10)}`
  await sql
    .raw(`create table ${table} (id int primary key); insert into ${table} values (1)`)
    .execute(db)
  const holder = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await holder.connect()
  await holder.query(`begin; select id from ${table} where id = 1 for update`)
  return {
    update: `update ${table} set id = 1 where id = 1`,
    async release() {
      await holder.query('rollback')
      await holder.end()
      await sql.raw(`drop table ${table}`).execute(db)
    },
  }
}

describe('Postgres errors', () => {
  it('a write on a read-only server (a failed-over primary, 25006) means Postgres cannot write', async () => {
    const error = await errorOf('create temporary table t (id int)', [
      'set default_transaction_read_only = on',
    ])
    expect((error as { code?: string }).code).toBe('25006')
    expect(isConnectionError(error)).toBe(true)
    expect(isTimedOutStatement(error)).toBe(false)
  })

  it('a connection the server ended (57P01, admin shutdown) means Postgres went away', async () => {
    const victim = new pg.Client({ connectionString: TEST_DATABASE_URL })
    victim.on('error', () => {})
    await victim.connect()
    const { rows } = await victim.query<{ pid: number }>('select pg_backend_pid() as pid')
    const sleeping = victim.query('select pg_sleep(30)').catch((e: unknown) => e)
    await sql`select pg_terminate_backend(${rows[0]?.pid ?? 0})`.execute(db)
    const error = await sleeping
    await victim.end().catch(() => {})
    expect((error as { code?: string }).code).toBe('57P01')
    expect(isConnectionError(error)).toBe(true)
  })

  for (const [setting, code] of [
    ['lock_timeout', '55P03'],
    ['statement_timeout', '57014'],
  ] as const) {
    it(`a ${setting} (${code}) is a statement Postgres gave up on, not an outage`, async () => {
      const row = await lockedRow()
      try {
        const error = await errorOf(row.update, [`set ${setting} = '200ms'`])
        expect((error as { code?: string }).code).toBe(code)
        expect(isTimedOutStatement(error)).toBe(true)
        expect(isConnectionError(error)).toBe(false)
        expect(isUnavailableError(error)).toBe(true)
      } finally {
        await row.release()
      }
    })
  }

  it("an error of the statement's own is neither, even when its message names a connection", async () => {
    const error = await errorOf(
      `do $$ begin raise exception 'connection terminated: refused by policy'; end $$`,
    )
    expect((error as { code?: string }).code).toBe('P0001')
    expect(isConnectionError(error)).toBe(false)
    expect(isUnavailableError(error)).toBe(false)
  })

  it("node-postgres' own connection errors (no SQLSTATE) still mean Postgres went away", async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: 1, connectionTimeoutMillis: 1_000 })
    const refused = await client.connect().catch((e: unknown) => e)
    expect(isConnectionError(refused)).toBe(true)
    expect(isConnectionError(new Error('Connection terminated unexpectedly'))).toBe(true)
  })
})

describe('a request whose write Postgres refuses as read-only', () => {
  it('is answered 503 (try again in a moment), not 500', async () => {
    const url = new URL(TEST_DATABASE_URL)
    url.searchParams.set('options', '-c default_transaction_read_only=on')
    const readOnly = await createDb(loadEnv({ DATABASE_URL: url.toString() }), { poolSize: 1 })
    try {
      const app = new Hono<AppEnv>()
      app.use(...requestContext(createLogger('silent'), createMetrics()))
      app.onError(onError)
      app.post('/write', async (c) => {
        await sql`create temporary table t (id int)`.execute(readOnly)
        return c.json({ ok: true })
      })
      const response = await app.request('/write', { method: 'POST' })
      expect(response.status).toBe(503)
      expect(await response.json()).toMatchObject({ error: { code: 'UNAVAILABLE' } })
    } finally {
      await readOnly.destroy()
    }
  })
})

describe('errors without a SQLSTATE', () => {
  it('are told by their class, code or exact words, not by a word their message happens to hold', () => {
    // A bug: it names a connection, and is no outage (a 500, not a 503 to try again).
    let bug: unknown
    try {
      ;(undefined as unknown as { connection: unknown }).connection
    } catch (error) {
      bug = error
    }
    expect(String(bug)).toContain("reading 'connection'")
    expect(isUnavailableError(bug)).toBe(false)
    // LINE refusing a request whose body mentions a timeout.
    const refused = new HTTPFetchError('400 - {"message":"The timeout property is invalid"}', {
      status: 400,
      statusText: 'Bad Request',
      headers: new Headers(),
      body: '{"message":"The timeout property is invalid"}',
    })
    expect(isUnavailableError(refused)).toBe(false)
    // A call given up on (withTimeout's, or an AbortSignal.timeout's) still is one.
    expect(isConnectionError(new TimeoutError('LINE push timed out after 5000 ms'))).toBe(true)
    const aborted = new DOMException('The operation was aborted due to timeout', 'TimeoutError')
    expect(isConnectionError(aborted)).toBe(true)
  })

  it("ioredis' own, for a Redis that is not there, mean Redis went away", async () => {
    const errorsOf = async (options: RedisOptions) => {
      const redis = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, ...options })
      redis.on('error', () => {})
      const error = await redis.ping().catch((e: unknown) => e)
      redis.disconnect()
      return error
    }
    const offline = await errorsOf({ enableOfflineQueue: false })
    expect(String(offline)).toContain("Stream isn't writeable")
    const retried = await errorsOf({ maxRetriesPerRequest: 0, retryStrategy: () => 50 })
    expect((retried as Error).name).toBe('MaxRetriesPerRequestError')
    const closed = await errorsOf({ retryStrategy: () => null })
    expect(String(closed)).toContain('Connection is closed')
    for (const error of [offline, retried, closed]) expect(isConnectionError(error)).toBe(true)
  })
})

describe('a transaction whose connection Postgres ended under a query', () => {
  it("fails with the server's reason (57P01), not the rollback's that found the connection gone", async () => {
    const failure = db
      .transaction()
      .execute(async (trx) => {
        await sql`select pg_sleep(30) as "rollbackVictim"`.execute(trx)
      })
      .catch((e: unknown) => e)
    await vi.waitFor(async () => {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
        where query like '%as "rollbackVictim"' and pid <> pg_backend_pid()`.execute(db)
      expect(rows[0]?.n).toBe(1)
    })
    await sql`select pg_terminate_backend(pid) from pg_stat_activity
      where query like '%as "rollbackVictim"' and pid <> pg_backend_pid()`.execute(db)
    const error = await failure
    expect((error as { code?: string }).code).toBe('57P01')
    expect(isConnectionError(error)).toBe(true)
  })
})
