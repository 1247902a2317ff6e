import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { findSurvivingCustomer } from '../../src/customers/customer.repo.ts'
import { importCustomerRow } from '../../src/customers/customer-import.service.ts'
import { findRowCustomer } from '../../src/customers/customer-row-match.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { loadTombstoneKey } from '../../src/customers/tombstones.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { createCustomer, mergeInto, shopIdHeldBy, writeMergeChain } from './factories.ts'

// The walk of merges the customer import, the lookups by identity and the profile take
// (findSurvivingCustomer): a merged customer always leads to the one holding their data now.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 2 })
})
afterAll(async () => {
  await db.destroy()
})

const shopId = () => `shop-${randomUUID()}`
const mergedIntoOf = async (id: string) =>
  (
    await db
      .selectFrom('customer')
      .select('merged_into_id')
      .where('id', '=', id)
      .executeTakeFirstOrThrow()
  ).merged_into_id

const heldBy = (customerId: string) => shopIdHeldBy(db, customerId)

describe('findSurvivingCustomer', () => {
  it('leads every customer of three merges to the last survivor, each merged one pointing at it', async () => {
    const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map(() => createCustomer(db)))
    if (!a || !b || !c || !d) throw new Error('four customers')
    await mergeInto(db, b.id, a.id)
    await mergeInto(db, c.id, b.id)
    await mergeInto(db, d.id, c.id)
    // A merge re-points the ones merged into its merged customer: no chain is ever longer than
    // one hop, which is what the walks' hop limit relies on.
    expect(await Promise.all([a, b, c].map((x) => mergedIntoOf(x.id)))).toEqual([d.id, d.id, d.id])
    for (const x of [a, b, c, d]) expect((await findSurvivingCustomer(db, x.id))?.id).toBe(d.id)
  })

  it('follows a chain written hop by hop to its end, up to the walk limit of 10 hops', async () => {
    for (const hops of [3, 10]) {
      const ids = await writeMergeChain(db, hops)
      const found = await findSurvivingCustomer(db, ids[0] as string)
      expect(found).toMatchObject({ id: ids[hops], merged_into_id: null, erased_at: null })
    }
  })

  it('leads a customer merged, then whose survivor was erased, to the erased survivor', async () => {
    const a = await createCustomer(db)
    const b = await createCustomer(db)
    const c = await createCustomer(db)
    await mergeInto(db, b.id, a.id)
    await mergeInto(db, c.id, b.id)
    await eraseCustomer(db, c.id)
    const found = await findSurvivingCustomer(db, a.id)
    expect(found?.id).toBe(c.id)
    expect(found?.erased_at).not.toBeNull()

    const ids = await writeMergeChain(db, 3, { erased: true })
    expect((await findSurvivingCustomer(db, ids[0] as string))?.erased_at).not.toBeNull()
  })

  it('refuses a chain longer than it follows, never giving a merged customer as the survivor', async () => {
    const ids = await writeMergeChain(db, 21)
    await expect(findSurvivingCustomer(db, ids[0] as string)).rejects.toThrow(
      'customer merge chain is too long',
    )
  })

  it('gives undefined for an unknown customer', async () => {
    expect(await findSurvivingCustomer(db, randomUUID())).toBeUndefined()
  })
})

describe('the customer import, by an id held on a merged customer', () => {
  const importEnv = { ...env, MEMBER_CARD_PREFIX: env.MEMBER_CARD_PREFIX }

  it('updates the last survivor of three merges', async () => {
    const external_id = shopId()
    const a = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: external_id }],
    })
    const b = await createCustomer(db)
    const c = await createCustomer(db)
    const d = await createCustomer(db)
    await mergeInto(db, b.id, a.id)
    await mergeInto(db, c.id, b.id)
    await mergeInto(db, d.id, c.id)
    const result = await importCustomerRow(db, importEnv, { external_id, name: 'Chain End' })
    expect(result).toEqual({ outcome: 'updated', customerId: d.id })
  })

  it('finds the customer at the end of a three-hop chain', async () => {
    const ids = await writeMergeChain(db, 3)
    const value = await heldBy(ids[0] as string)
    const id = { column: 'external_id', kind: 'online_customer', value, typed: value } as const
    const key = await loadTombstoneKey(db)
    const found = await db
      .transaction()
      .execute((trx) => findRowCustomer(trx, { external_id: value }, [id], key))
    expect(found.customerId).toBe(ids[3])
  })

  it("refuses the row as an erased person's when the chain ends at an erased customer", async () => {
    const ids = await writeMergeChain(db, 3, { erased: true })
    const external_id = await heldBy(ids[0] as string)
    await expect(importCustomerRow(db, importEnv, { external_id, name: 'X' })).rejects.toThrow(
      'this customer was erased on request',
    )
  })
})
