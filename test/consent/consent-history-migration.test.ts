import { afterAll, describe, expect, it } from 'vitest'
import { bareCustomer, databaseMigratedTo } from '../support/migrated-database.ts'

const BEFORE = '20261220T120100-create-richmenu-relink'

describe('migration 20261221T090000: consent history', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })

  it('starts the history with the rows consent holds, their value before unknown', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const { db } = migrated
    const customerId = await bareCustomer(db)
    const updatedAt = new Date('2026-12-10T01:02:03.456Z')
    const tappedAt = new Date('2026-12-10T01:02:00.000Z')
    await db
      .insertInto('consent')
      .values([
        {
          customer_id: customerId,
          category: 'marketing',
          channel: 'email',
          granted: true,
          source: 'admin',
          updated_at: updatedAt,
        },
        {
          customer_id: customerId,
          category: 'marketing',
          channel: 'line',
          granted: false,
          source: 'line-postback',
          decided_at: tappedAt,
          updated_at: updatedAt,
        },
      ])
      .execute()

    await migrated.migrateToLatest()
    const history = (
      await db
        .selectFrom('consent_history')
        .selectAll()
        .where('customer_id', '=', customerId)
        .orderBy('channel')
        .execute()
    ).map(({ id, customer_id, category, ...row }) => {
      expect([id, customer_id, category]).toEqual([expect.any(String), customerId, 'marketing'])
      return row
    })
    expect(history).toEqual([
      {
        channel: 'email',
        granted: true,
        previous: null,
        source: 'admin',
        api_key_id: null,
        decided_at: null,
        recorded_at: updatedAt,
      },
      {
        channel: 'line',
        granted: false,
        previous: null,
        source: 'line-postback',
        api_key_id: null,
        decided_at: tappedAt,
        recorded_at: updatedAt,
      },
    ])
  })
})
