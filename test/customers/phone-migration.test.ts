import { afterAll, describe, expect, it } from 'vitest'
import { databaseMigratedTo } from '../support/migrated-database.ts'

const BEFORE = '20261208T140000-backfill-delivery-line-first-call-unsent'

describe('migration 20261208T150000: phones stored with +81 become the domestic number', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })

  it('rewrites 81… to 0…, unless another identity already holds the new form', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const { db } = migrated

    const customer = async (phone: string) => {
      const { id } = await db
        .insertInto('customer')
        .values({ display_name: null, phone })
        .returning('id')
        .executeTakeFirstOrThrow()
      await db
        .insertInto('identity')
        .values({ customer_id: id, kind: 'phone', value: phone })
        .execute()
      return id
    }
    const old = await customer('819012345678') // "+81 90-1234-5678" as it was stored
    const domestic = await customer('0312345678') // stays
    const taken = await customer('818011112222') // its new form is someone else's already
    const other = await customer('08011112222')

    await migrated.migrateToLatest()
    const phones = await db
      .selectFrom('identity')
      .innerJoin('customer', 'customer.id', 'identity.customer_id')
      .select(['identity.customer_id', 'identity.value', 'customer.phone'])
      .where('identity.kind', '=', 'phone')
      .execute()
    const of = (id: string) => phones.find((p) => p.customer_id === id)
    expect(of(old)).toMatchObject({ value: '09012345678', phone: '09012345678' })
    expect(of(domestic)).toMatchObject({ value: '0312345678', phone: '0312345678' })
    expect(of(taken)).toMatchObject({ value: '818011112222', phone: '818011112222' })
    expect(of(other)?.value).toBe('08011112222')
  })
})
