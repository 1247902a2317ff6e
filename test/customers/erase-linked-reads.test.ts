import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { migrateToLatest } from '../../src/main/migrate.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import { eventually } from '../support/wait.ts'

// A database of its own: the test counts the account_link rows Postgres reads.
let url: string
let db: Database
let drop: () => Promise<void>
beforeAll(async () => {
  ;({ url, drop } = await createPrivateDatabase())
  db = await createDb(loadEnv({ DATABASE_URL: url }), { poolSize: 2 })
  await migrateToLatest(db)
})
afterAll(async () => {
  await db?.destroy()
  await drop?.()
})

/** A shop's worth of account links later unlinked: `n` pairs of customers, none of them ours. */
async function otherPeoplesUnlinks(n: number) {
  await sql`
    with c as (
      insert into customer (display_name) select 'other' from generate_series(1, ${n * 2})
      returning id
    ), numbered as (select id, row_number() over () as i from c),
    lu as (
      insert into line_user (customer_id, line_uid, status, status_changed_at)
      select id, 'U' || md5(id::text), 'friend', now() from numbered where i % 2 = 0
      returning id, customer_id
    )
    insert into account_link (line_user_id, customer_id, identity_kind, unlinked_at,
      unlinked_to_customer_id)
    select lu.id, online.id, 'email', now(), lu.customer_id from lu
    join numbered line_side on line_side.id = lu.customer_id
    join numbered online on online.i = line_side.i - 1`.execute(db)
  await sql`analyze account_link`.execute(db)
}

/** The account_link rows Postgres has read so far, by scan or index, in every session. */
async function accountLinkReads(): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) as n from pg_stat_user_tables
    where relname = 'account_link'`.execute(db)
  return Number(rows[0]?.n ?? 0)
}

/** Runs `work` on connections of its own, closed after: their statistics are then reported. */
async function onOwnConnections(work: (own: Database) => Promise<void>): Promise<void> {
  const own = await createDb(loadEnv({ DATABASE_URL: url }), { poolSize: 1 })
  try {
    await work(own)
  } finally {
    await own.destroy()
  }
}

describe('an erasure and the account links of other people', () => {
  it('reads only the account links of the person, not every unlinked one', async () => {
    await otherPeoplesUnlinks(5_000)
    const customer = () =>
      db.insertInto('customer').defaultValues().returning('id').executeTakeFirstOrThrow()
    const pair = { id: (await customer()).id, other: (await customer()).id }
    const lineUser = await db
      .insertInto('line_user')
      .values({
        customer_id: pair.other,
        line_uid: `U${'0'.repeat(31)}1`,
        status: 'friend',
        status_changed_at: new Date(),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    await db
      .insertInto('account_link')
      .values({
        line_user_id: lineUser.id,
        customer_id: pair.id,
        identity_kind: 'email',
        unlinked_at: new Date(),
        unlinked_to_customer_id: pair.other,
      })
      .execute()
    await onOwnConnections(async () => {})
    await sql`select pg_stat_clear_snapshot()`.execute(db)
    const before = await accountLinkReads()

    let linked: string[] = []
    await onOwnConnections(async (own) => {
      const result = await eraseCustomer(own, pair.id, { linked: 'erase' })
      linked = result.linked.map((l) => l.customerId)
    })
    expect(linked).toEqual([pair.other])
    // 5,000 unlinks of others: the erasure reads the two of these two customers, a few times.
    await eventually(async () => {
      await sql`select pg_stat_clear_snapshot()`.execute(db)
      expect(await accountLinkReads()).toBeGreaterThan(before)
    })
    expect((await accountLinkReads()) - before).toBeLessThan(50)
  })
})
