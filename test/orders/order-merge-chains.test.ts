import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { erasedCustomerError } from '../../src/orders/erased-order-customer.ts'
import { findIdentityHolders } from '../../src/orders/identity-holders.repo.ts'
import type { Order } from '../../src/orders/order.schemas.ts'
import { recordOrder, recordOrderBatch } from '../../src/orders/order.service.ts'
import { batchKey, findRecordedOrders } from '../../src/orders/recorded-order.repo.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { createCustomer, mergeInto, shopIdHeldBy, writeMergeChain } from '../customers/factories.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'

// Every walk of merges the orders take (who holds a shop id or email, who holds a recorded order,
// whether an order leads to an erased customer) leads a merged customer to the one holding their
// data now, and refuses a chain longer than it follows rather than take a merged customer as live.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
})
afterAll(async () => {
  await db.destroy()
})

const TOO_LONG = 'customer merge chain is too long'
const shopId = () => `shop-${randomUUID()}`

const heldBy = (customerId: string) => shopIdHeldBy(db, customerId)

function orderOf(customer: Order['customer']): Order {
  return {
    source: 'chain-shop',
    orderId: randomUUID(),
    customer,
    orderedAt: new Date(Date.now() - 86_400_000),
    lines: [{ sku: 'SOFA-1', quantity: 1, unitPrice: 3000 }],
    total: 3000,
  }
}

const holdersOf = (value: string) =>
  db
    .transaction()
    .execute((trx) => findIdentityHolders(trx, [{ kind: 'online_customer', value }]))
    .then((holders) => holders.get(batchKey('online_customer', value)))

const recordOne = (order: Order) =>
  db.transaction().execute((trx) => recordOrder(trx, { ...env }, order))

/** An order recorded for `live`, whose purchase is then moved onto `holder` (a merged row). */
async function orderHeldBy(live: string, holder: string): Promise<Order> {
  const order = orderOf({ externalId: await heldBy(live) })
  const { purchaseId } = await recordOne(order)
  await db
    .updateTable('purchase')
    .set({ customer_id: holder })
    .where('id', '=', purchaseId)
    .execute()
  return order
}

const recordedOf = (order: Order) =>
  findRecordedOrders(db, [order]).then((r) => r.get(batchKey(order.source, order.orderId)))

const purchaseOwner = async (order: Order) =>
  (
    await db
      .selectFrom('purchase')
      .select('customer_id')
      .where('source', '=', order.source)
      .where('external_id', '=', order.orderId)
      .executeTakeFirstOrThrow()
  ).customer_id

describe('three merges, each merged customer re-pointed at the last survivor', () => {
  it('lead a shop id, an order recorded before and a new order, one by one or in a batch, to it', async () => {
    const value = shopId()
    const a = await createCustomer(db, { identities: [{ kind: 'online_customer', value }] })
    const [b, c, d] = [await createCustomer(db), await createCustomer(db), await createCustomer(db)]
    const before = orderOf({ externalId: value })
    await recordOne(before)
    await mergeInto(db, b.id, a.id)
    await mergeInto(db, c.id, b.id)
    await mergeInto(db, d.id, c.id)

    expect(await holdersOf(value)).toEqual({ ownerId: d.id, liveId: d.id })
    expect(await recordedOf(before)).toMatchObject({ customer_id: d.id, erased: false })
    expect((await recordOne(orderOf({ externalId: value }))).customerId).toBe(d.id)
    const [batched] = await recordOrderBatch(db, env, [orderOf({ externalId: value })])
    expect(batched).toMatchObject({ outcome: { created: true, customerId: d.id } })
  })
})

describe('a chain of three merges written hop by hop', () => {
  it('leads a shop id held by its first customer to its last', async () => {
    const ids = await writeMergeChain(db, 3)
    const value = await heldBy(ids[0] as string)
    expect(await holdersOf(value)).toEqual({ ownerId: ids[0], liveId: ids[3] })

    const one = orderOf({ externalId: value })
    expect((await recordOne(one)).customerId).toBe(ids[3])
    expect(await purchaseOwner(one)).toBe(ids[3])
    const batch = orderOf({ externalId: value })
    const [batched] = await recordOrderBatch(db, env, [batch])
    expect(batched).toMatchObject({ outcome: { created: true, customerId: ids[3] } })
    expect(await purchaseOwner(batch)).toBe(ids[3])
  })

  it('leads an order recorded on its first customer to its last', async () => {
    const ids = await writeMergeChain(db, 3)
    const order = await orderHeldBy((await createCustomer(db)).id, ids[0] as string)
    expect(await recordedOf(order)).toMatchObject({ customer_id: ids[3], erased: false })
  })

  it('ending at an erased customer: nobody holds the shop id or the order, and it leads to erased', async () => {
    const ids = await writeMergeChain(db, 3, { erased: true })
    const value = await heldBy(ids[0] as string)
    expect(await holdersOf(value)).toEqual({ ownerId: ids[0], liveId: null })
    const order = await orderHeldBy((await createCustomer(db)).id, ids[0] as string)
    expect(await recordedOf(order)).toMatchObject({ customer_id: null, erased: true })
    const error = await db
      .transaction()
      .execute((trx) => erasedCustomerError(trx, { externalId: value }))
    expect(error).toMatchObject({ code: 'GONE', details: [{ field: 'customer.externalId' }] })
  })

  it('of ten hops, the most a walk follows, is followed to its end', async () => {
    const ids = await writeMergeChain(db, 10)
    const value = await heldBy(ids[0] as string)
    expect(await holdersOf(value)).toEqual({ ownerId: ids[0], liveId: ids[10] })
    expect((await recordOne(orderOf({ externalId: value }))).customerId).toBe(ids[10])
    const order = await orderHeldBy((await createCustomer(db)).id, ids[0] as string)
    expect(await recordedOf(order)).toMatchObject({ customer_id: ids[10] })
  })
})

describe('a chain longer than any walk follows', () => {
  it('is refused, never taken for a live customer: its last customer reached is merged', async () => {
    const ids = await writeMergeChain(db, 21)
    const value = await heldBy(ids[0] as string)
    await expect(holdersOf(value)).rejects.toThrow(TOO_LONG)
    await expect(recordOne(orderOf({ externalId: value }))).rejects.toThrow(TOO_LONG)
    const [batched] = await recordOrderBatch(db, env, [orderOf({ externalId: value })])
    expect(batched).toEqual({ error: expect.objectContaining({ message: TOO_LONG }) })

    const order = await orderHeldBy((await createCustomer(db)).id, ids[0] as string)
    await expect(recordedOf(order)).rejects.toThrow(TOO_LONG)
    await expect(
      db.transaction().execute((trx) => erasedCustomerError(trx, { externalId: value })),
    ).rejects.toThrow(TOO_LONG)
  })
})
