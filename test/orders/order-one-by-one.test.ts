import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type BatchResult, recordOrderBatch } from '../../src/orders/order.service.ts'
import type { Database } from '../../src/platform/db.ts'
import { makeCustomer, makeStoreKey, postPos, receipt } from '../purchases/fixtures.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import { emailPastMergeChain, orderOf } from './order-import-fixtures.ts'

// A batch the COPY path cannot write (here: an order naming an email past a merge chain) is
// written one order at a time. Each order locks its customer until its transaction commits: a
// register's receipt for that customer must not wait for the whole batch (5000 orders, ~25 s).

let k: TestKizuna
let db: Database
let key: string
beforeAll(async () => {
  k = await startTestKizuna()
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
})
afterAll(async () => {
  await k.stopAll()
})

const purchasesOf = (customerId: string) =>
  db
    .selectFrom('purchase')
    .select(['channel', 'total'])
    .where('customer_id', '=', customerId)
    .orderBy('channel')
    .execute()

const created = (results: BatchResult[]) =>
  results.map((r) => ('outcome' in r ? r.outcome.created : 'error'))

describe('recordOrderBatch, one order at a time', () => {
  it("commits as it goes: a receipt for a customer whose order is written does not wait for the batch's end", async () => {
    const source = `shop${randomUUID().slice(0, 8)}`
    const member = await makeCustomer(db)
    const shopId = `shop-${randomUUID()}`
    await db
      .insertInto('identity')
      .values({ customer_id: member.id, kind: 'online_customer', value: shopId })
      .execute()
    const orders = [
      orderOf(source, { email: await emailPastMergeChain(db) }, 1_000),
      orderOf(source, { externalId: shopId }, 30_000),
      // Enough orders after it to take a few seconds one at a time.
      ...Array.from({ length: 600 }, (_, i) => orderOf(source, { externalId: `o-${i}` }, 1_000)),
    ].map((o) => ({ ...o, orderedAt: new Date(o.orderedAt) }))

    let ended = false
    const batch = recordOrderBatch(db, k.deps.env, orders).finally(() => {
      ended = true
    })
    try {
      // The member's order is written (and visible to others once committed).
      await eventually(async () => expect(await purchasesOf(member.id)).toHaveLength(1), 60_000)
      const scan = await postPos(
        k.baseUrl,
        '/scans',
        { barcode: member.card, receipt: receipt() },
        key,
      )
      expect(scan.status).toBe(200)
      expect(ended).toBe(false)
    } finally {
      const results = await batch
      expect(created(results)).toEqual(['error', ...orders.slice(1).map(() => true)])
    }
    expect(await purchasesOf(member.id)).toEqual([
      { channel: 'online', total: 30_000 },
      { channel: 'store', total: 8_000 },
    ])

    // Run again (an import run again after a stop): every order is found, none written twice.
    const again = await recordOrderBatch(db, k.deps.env, orders)
    expect(created(again)).toEqual(['error', ...orders.slice(1).map(() => false)])
    expect(await purchasesOf(member.id)).toHaveLength(2)
  }, 120_000)
})
