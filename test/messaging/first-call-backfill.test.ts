import { randomUUID } from 'node:crypto'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { createMigrator } from '../../src/main/migrate.ts'
import type { DB } from '../../src/platform/db.ts'
import { createPrivateDatabase } from '../support/private-database.ts'

const BEFORE = '20261208T120000-index-coupon-used-purchase'

describe('migration 20261208T130000: first-call times for deliveries tried before they were kept', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })

  it('gives a LINE delivery already tried its creation time, and leaves the rest alone', async () => {
    const database = await createPrivateDatabase()
    cleanups.push(() => database.drop())
    const db = new Kysely<DB>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url }) }),
    })
    cleanups.push(() => db.destroy())
    const migrator = createMigrator(db)
    expect((await migrator.migrateTo(BEFORE)).error).toBeUndefined()

    const { id: customerId } = await db
      .insertInto('customer')
      .values({ display_name: null })
      .returning('id')
      .executeTakeFirstOrThrow()
    const created = new Date('2026-12-01T00:00:00Z')
    const row = (status: string, channel: string | null, attempts: number) => ({
      customer_id: customerId,
      dedupe_key: `test:${randomUUID()}`,
      kind: 'campaign',
      template_id: 'campaign-sample',
      status,
      channel,
      attempts,
      created_at: created,
    })
    const rows = await db
      .insertInto('delivery')
      .values([
        row('failed', 'line', 10), // a push that ran out of retries: may have reached LINE
        row('pending', 'line', 2), // waiting for a retry
        row('failed', 'email', 10), // email: no retry key
        row('pending', null, 0), // never tried
        row('sent', 'line', 1),
      ])
      .returning('id')
      .execute()

    expect((await migrator.migrateToLatest()).error).toBeUndefined()
    const after = await db
      .selectFrom('delivery')
      .select(['id', 'line_first_call_at as first'])
      .where(
        'id',
        'in',
        rows.map((r) => r.id),
      )
      .execute()
    const firstOf = (i: number) => after.find((a) => a.id === rows[i]?.id)?.first ?? null
    expect(firstOf(0)).toEqual(created)
    expect(firstOf(1)).toEqual(created)
    expect([firstOf(2), firstOf(3), firstOf(4)]).toEqual([null, null, null])
  })
})
