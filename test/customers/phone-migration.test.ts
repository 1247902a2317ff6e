import { afterAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/platform/db.ts'
import { databaseMigratedTo } from '../support/migrated-database.ts'

const BEFORE = '20261208T140000-backfill-delivery-line-first-call-unsent'
const BEFORE_AGAIN = '20261226T140000-create-line-channel'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** A customer with this phone, stored as it is given (as an earlier version stored it). */
async function customerWithPhone(db: Database, phone: string): Promise<string> {
  const { id } = await db
    .insertInto('customer')
    .values({ display_name: null, phone })
    .returning('id')
    .executeTakeFirstOrThrow()
  await db.insertInto('identity').values({ customer_id: id, kind: 'phone', value: phone }).execute()
  return id
}

/** Each customer's phone identity and customer.phone. */
const phonesOf = (db: Database) =>
  db
    .selectFrom('identity')
    .innerJoin('customer', 'customer.id', 'identity.customer_id')
    .select(['identity.customer_id', 'identity.value', 'customer.phone'])
    .where('identity.kind', '=', 'phone')
    .execute()

describe('migration 20261208T150000: phones stored with +81 become the domestic number', () => {
  it('rewrites 81… to 0…, unless another identity already holds the new form', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const { db } = migrated

    const customer = (phone: string) => customerWithPhone(db, phone)
    const old = await customer('819012345678') // "+81 90-1234-5678" as it was stored
    const domestic = await customer('0312345678') // stays
    const taken = await customer('818011112222') // its new form is someone else's already
    const other = await customer('08011112222')

    await migrated.migrateToLatest()
    const phones = await phonesOf(db)
    const of = (id: string) => phones.find((p) => p.customer_id === id)
    expect(of(old)).toMatchObject({ value: '09012345678', phone: '09012345678' })
    expect(of(domestic)).toMatchObject({ value: '0312345678', phone: '0312345678' })
    expect(of(taken)).toMatchObject({ value: '818011112222', phone: '818011112222' })
    expect(of(other)?.value).toBe('08011112222')
  })
})

describe('migration 20261226T150000: phones stored as 81… since the first one are rewritten too', () => {
  it('rewrites 81… written by the earlier phone rule to 0…, unless the new form is taken', async () => {
    const migrated = await databaseMigratedTo(BEFORE_AGAIN)
    cleanups.push(() => migrated.close())
    const { db } = migrated
    // "81-90-1234-5678" as the rule of 2026-12-08 to 2026-12-26 stored it.
    const old = await customerWithPhone(db, '819012345678')
    const taken = await customerWithPhone(db, '818011112222')
    await customerWithPhone(db, '08011112222')

    await migrated.migrateToLatest()
    const phones = await phonesOf(db)
    const of = (id: string) => phones.find((p) => p.customer_id === id)
    expect(of(old)).toMatchObject({ value: '09012345678', phone: '09012345678' })
    expect(of(taken)).toMatchObject({ value: '818011112222', phone: '818011112222' })
  })
})
