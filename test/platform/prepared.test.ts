import { randomUUID } from 'node:crypto'
import { type RawBuilder, sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb } from '../../src/platform/db.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { isOutageError } from '../../src/platform/outage.ts'
import { executePrepared, PREPARE } from '../../src/platform/prepared.ts'
import { customerStart, recordPurchaseFor } from '../../src/purchases/purchase.service.ts'
import { makeCustomer } from '../purchases/fixtures.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { logSink } from '../support/log-sink.ts'
import { pgAdmin } from '../support/pg-admin.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import { eventually } from '../support/wait.ts'

// One connection per pool, so a session's prepared statements are visible to the next query.
const db = await createDb({ DATABASE_URL: TEST_DATABASE_URL, DATA_DIR: '' }, { poolSize: 1 })
afterAll(() => db.destroy())

const LIST = sql<{ statement: string }>`select statement from pg_prepared_statements`
/** What the connection that runs prepared statements has prepared (this listing included). */
const preparedStatements = async () => (await executePrepared(db, LIST)).rows
const planCacheMode = sql<{ mode: string }>`select current_setting('plan_cache_mode') as mode`

/**
 * A table of its own with one row, a read of it, and `change`, which alters what the read
 * returns, as a migration run by a newer process would while this one's connections stay open.
 */
async function withChangingTable(
  fn: (t: { read: RawBuilder<{ label: string }>; change: () => Promise<unknown> }) => Promise<void>,
) {
  const table = `prep_${randomUUID().replaceAll('-', '')}`
  await sql`create table ${sql.table(table)} (id int primary key, label varchar(10))`.execute(db)
  try {
    await sql`insert into ${sql.table(table)} values (1, 'one')`.execute(db)
    await fn({
      read: sql<{ label: string }>`select label from ${sql.table(table)} where id = ${1}`,
      change: () => sql`alter table ${sql.table(table)} alter column label type text`.execute(db),
    })
  } finally {
    await sql`drop table ${sql.table(table)}`.execute(db)
  }
}

describe('prepared statements', () => {
  it('prepares marked statements once per connection and answers them as usual', async () => {
    const query = sql<{ n: number }>`select ${41}::int + 1 as n`
    const first = await executePrepared(db, query)
    const again = await executePrepared(db, sql<{ n: number }>`select ${1}::int + 1 as n`)
    expect(first.rows).toEqual([{ n: 42 }])
    expect(again.rows).toEqual([{ n: 2 }])
    const marked = (await preparedStatements()).filter((s) => s.statement.startsWith(PREPARE))
    expect(marked.map((s) => s.statement)).toHaveLength(2) // the sum and the listing
    expect(marked.filter((s) => s.statement.includes('select $1::int + 1 as n'))).toHaveLength(1)
  })

  it('runs a statement again on a fresh connection when a migration changed what it returns', () =>
    withChangingTable(async ({ read, change }) => {
      expect((await executePrepared(db, read)).rows).toEqual([{ label: 'one' }])
      await change()
      expect((await executePrepared(db, read)).rows).toEqual([{ label: 'one' }])
      expect((await executePrepared(db, read)).rows).toEqual([{ label: 'one' }])
    }))

  it("fails a transaction whose prepared statement went stale with that error, not the closed connection's", () =>
    withChangingTable(async ({ read, change }) => {
      const inTransaction = () => db.transaction().execute((trx) => executePrepared(trx, read))
      expect((await inTransaction()).rows).toEqual([{ label: 'one' }])
      await change()
      // "cached plan must not change result type": the connection is closed for it, and the
      // rollback that follows, refused on it, must not take its place in what is logged.
      const stale = await inTransaction().catch((e: unknown) => e)
      expect((stale as { code?: string }).code).toBe('0A000')
      // Run again, as a caller's retry would, it runs on another connection.
      expect((await inTransaction()).rows).toEqual([{ label: 'one' }])
    }))

  it('leaves unmarked statements unprepared', async () => {
    await sql`select 'plain' as x`.execute(db)
    const mine = (await LIST.execute(db)).rows.map((s) => s.statement)
    expect(mine.some((t) => t.includes("'plain'"))).toBe(false)
    const theirs = (await preparedStatements()).map((s) => s.statement)
    expect(theirs.some((t) => t.includes("'plain'"))).toBe(false)
  })

  it('plans prepared statements once (generic plan), everything else per execution', async () => {
    expect((await executePrepared(db, planCacheMode)).rows).toEqual([
      { mode: 'force_generic_plan' },
    ])
    expect((await planCacheMode.execute(db)).rows).toEqual([{ mode: 'auto' }])
    // In a transaction a prepared statement stays on the transaction's connection.
    const inTrx = await db.transaction().execute((trx) => executePrepared(trx, planCacheMode))
    expect(inTrx.rows).toEqual([{ mode: 'auto' }])
  })

  it("plans the register's purchase statement once, outside a transaction", async () => {
    const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
    const customer = await makeCustomer(db)
    for (let i = 0; i < 3; i++) {
      const recorded = await recordPurchaseFor(
        db,
        env,
        {
          channel: 'store',
          source: 'S-PLAN',
          externalId: randomUUID(),
          customerId: null,
          purchasedAt: new Date(),
          lines: [{ sku: 'TEA-1', quantity: 1, unitPrice: 500 }],
          total: 500,
        },
        { start: customerStart(customer.id), withResult: true },
      )
      expect(recorded.created).toBe(true)
    }
    const stats = await executePrepared(
      db,
      sql<{ generic: string; custom: string }>`
        select generic_plans::text as generic, custom_plans::text as custom
        from pg_prepared_statements where statement like ${`${PREPARE}%insert into purchase %`}`,
    )
    // Re-planned per call, it cost more than running it (1.45 ms against 0.8 ms per scan).
    expect(stats.rows).toEqual([{ generic: '3', custom: '0' }])
  })
})

describe('a Postgres that answers but cannot write, or ends a query', () => {
  const made: { destroy(): Promise<void> }[] = []
  afterAll(async () => {
    for (const one of made) await one.destroy()
  })

  /** A pool on a database of its own, logging to a sink. */
  async function watched(url: string) {
    const logs = logSink()
    const watchedDb = await createDb(
      { DATABASE_URL: url, DATA_DIR: '' },
      { poolSize: 1, log: createLogger('info', logs.sink) },
    )
    made.push(watchedDb)
    return { db: watchedDb, said: () => logs.entries().map((l) => `${l.level} ${l.msg}`) }
  }

  it('is an outage from the first refused write until a write succeeds, whatever reads do', async () => {
    const database = await createPrivateDatabase()
    made.push({ destroy: () => database.drop() })
    const name = new URL(database.url).pathname.slice(1)
    await pgAdmin(database.url, `alter database "${name}" set default_transaction_read_only = on`)
    const { db: standby, said } = await watched(database.url)
    const write = sql`create table if not exists t (id int)`

    for (let i = 0; i < 2; i++) {
      const refused = await write.execute(standby).catch((e: unknown) => e)
      expect((refused as { code?: string }).code).toBe('25006')
      // The request or job it failed logs nothing of its own.
      expect(isOutageError(refused)).toBe(true)
      expect((await sql`select 1 as one`.execute(standby)).rows).toEqual([{ one: 1 }])
    }
    expect(said()).toEqual([expect.stringMatching(/^50 Postgres is unreachable at DATABASE_URL/)])

    // The primary again: its sessions are new ones that can write.
    await pgAdmin(database.url, `alter database "${name}" reset default_transaction_read_only`)
    await pgAdmin(
      database.url,
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}'`,
    )
    await eventually(async () => {
      await write.execute(standby)
    })
    expect(said()).toEqual([
      expect.stringMatching(/^50 Postgres is unreachable at DATABASE_URL/),
      expect.stringMatching(/^30 Postgres is reachable again/),
    ])
  })

  it('is an outage when the server ends a query under way (57P01), until a query succeeds', async () => {
    const { db: ended, said } = await watched(TEST_DATABASE_URL)
    const sleeping = sql`select pg_sleep(30)`.execute(ended).catch((e: unknown) => e)
    await eventually(async () => {
      const { rows } = await sql<{ n: string }>`
        select count(*)::text as n from pg_stat_activity where query = 'select pg_sleep(30)'
      `.execute(db)
      expect(rows[0]?.n).toBe('1')
    })
    await sql`select pg_terminate_backend(pid) from pg_stat_activity
      where query = 'select pg_sleep(30)'`.execute(db)
    const error = await sleeping
    expect((error as { code?: string }).code).toBe('57P01')
    expect(isOutageError(error)).toBe(true)
    expect(said()).toEqual([expect.stringMatching(/^50 Postgres is unreachable at DATABASE_URL/)])

    // (The connection the pool took back before its end came may fail the first one.)
    await eventually(async () => {
      expect((await sql`select 1 as one`.execute(ended)).rows).toEqual([{ one: 1 }])
    })
    expect(said()).toEqual([
      expect.stringMatching(/^50 Postgres is unreachable at DATABASE_URL/),
      expect.stringMatching(/^30 Postgres is reachable again/),
    ])
  })
})
