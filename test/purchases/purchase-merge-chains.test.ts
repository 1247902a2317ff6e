import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { MAX_MERGE_HOPS } from '../../src/customers/surviving-customer.repo.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import {
  lockPurchaser,
  type PurchaseInput,
  recordPurchase,
} from '../../src/purchases/purchase.service.ts'
import { createCustomer, mergeInto, writeMergeChain } from '../customers/factories.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'

// The walks of merges that lock as they go (lockPurchaser, recordPurchase): they lead where
// findSurvivingCustomer does, and refuse a chain longer than MAX_MERGE_HOPS as it does, never
// putting a purchase on, or handing out, a customer still merged.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 2 })
})
afterAll(async () => {
  await db.destroy()
})

const receipt = (customerId: string): PurchaseInput => ({
  channel: 'online',
  source: 'shop',
  externalId: randomUUID(),
  customerId,
  purchasedAt: new Date(),
  lines: [{ sku: 'SOFA-1', name: 'Sofa', quantity: 1, unitPrice: 1_000 }],
  total: 1_000,
})
const lock = (id: string) => db.transaction().execute(async (trx) => lockPurchaser(trx, id))
const record = (id: string) =>
  db.transaction().execute((trx) => recordPurchase(trx, env, receipt(id)))
const buyerOf = async (purchaseId: string) =>
  (
    await db
      .selectFrom('purchase')
      .select('customer_id')
      .where('id', '=', purchaseId)
      .executeTakeFirstOrThrow()
  ).customer_id
const purchasesOf = async (ids: string[]) =>
  db.selectFrom('purchase').select('id').where('customer_id', 'in', ids).execute()

describe('lockPurchaser and recordPurchase, for a merged customer', () => {
  it('lead a merged customer to the one it was merged into', async () => {
    const a = await createCustomer(db)
    const b = await createCustomer(db)
    await mergeInto(db, b.id, a.id)
    expect((await lock(a.id))?.id).toBe(b.id)
    expect(await buyerOf((await record(a.id)).purchaseId)).toBe(b.id)
  })

  it('follow a chain written hop by hop, of 2 and of MAX_MERGE_HOPS', async () => {
    for (const hops of [2, MAX_MERGE_HOPS]) {
      const ids = await writeMergeChain(db, hops)
      expect((await lock(ids[0] as string))?.id).toBe(ids[hops])
      expect(await buyerOf((await record(ids[0] as string)).purchaseId)).toBe(ids[hops])
    }
  })

  it('answer GONE when the survivor was erased after the merge', async () => {
    const a = await createCustomer(db)
    const b = await createCustomer(db)
    await mergeInto(db, b.id, a.id)
    await eraseCustomer(db, b.id)
    await expect(lock(a.id)).rejects.toMatchObject({ code: 'GONE' })
    await expect(record(a.id)).rejects.toMatchObject({ code: 'GONE' })
    const ids = await writeMergeChain(db, 2, { erased: true })
    await expect(lock(ids[0] as string)).rejects.toMatchObject({ code: 'GONE' })
    await expect(record(ids[0] as string)).rejects.toMatchObject({ code: 'GONE' })
  })

  it('refuse a chain longer than MAX_MERGE_HOPS, recording nothing on any of it', async () => {
    for (const hops of [MAX_MERGE_HOPS + 1, 2 * MAX_MERGE_HOPS + 1]) {
      const ids = await writeMergeChain(db, hops)
      await expect(lock(ids[0] as string), `${hops}`).rejects.toThrow(
        'customer merge chain is too long',
      )
      await expect(record(ids[0] as string), `${hops}`).rejects.toThrow(
        'customer merge chain is too long',
      )
      expect(await purchasesOf(ids)).toEqual([])
    }
  })
})
