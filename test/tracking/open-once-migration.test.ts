import { afterAll, describe, expect, it } from 'vitest'
import { databaseMigratedTo, legacyDeliveries } from '../support/migrated-database.ts'

const BEFORE = '20261224T140000-add-delivery-builder'

describe('migration 20261226T100000: one open per delivery', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })

  it('keeps the first open of each delivery, every click and unsubscribe, and refuses a second open', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const { db } = migrated
    const { ids } = await legacyDeliveries(db, [{}, {}])
    const [opened = '', once = ''] = ids
    const at = (minute: number) => new Date(Date.UTC(2026, 11, 20, 10, minute))
    await db
      .insertInto('delivery_event')
      .values([
        { delivery_id: opened, kind: 'open', created_at: at(3) },
        { delivery_id: opened, kind: 'open', created_at: at(1) },
        { delivery_id: opened, kind: 'open', created_at: at(2) },
        { delivery_id: opened, kind: 'click', url: 'https://shop.example/', created_at: at(4) },
        { delivery_id: opened, kind: 'click', url: 'https://shop.example/', created_at: at(5) },
        { delivery_id: opened, kind: 'unsubscribe', created_at: at(6) },
        { delivery_id: once, kind: 'open', created_at: at(7) },
      ])
      .execute()

    await migrated.migrateToLatest()
    const events = await db
      .selectFrom('delivery_event')
      .select(['delivery_id', 'kind', 'created_at'])
      .where('delivery_id', 'in', ids)
      .orderBy('created_at')
      .execute()
    expect(events).toEqual([
      { delivery_id: opened, kind: 'open', created_at: at(1) },
      { delivery_id: opened, kind: 'click', created_at: at(4) },
      { delivery_id: opened, kind: 'click', created_at: at(5) },
      { delivery_id: opened, kind: 'unsubscribe', created_at: at(6) },
      { delivery_id: once, kind: 'open', created_at: at(7) },
    ])
    await expect(
      db.insertInto('delivery_event').values({ delivery_id: once, kind: 'open' }).execute(),
    ).rejects.toMatchObject({ code: '23505' })
  })
})
