import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import type { Order } from '../../src/orders/order.schemas.ts'
import { recordOrderBatch } from '../../src/orders/order.service.ts'
import { writeOrderBatch } from '../../src/orders/order-batch.repo.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { recordPurchase } from '../../src/purchases/purchase.service.ts'
import { createCustomer } from '../customers/factories.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { heldTransaction, lockWaitOn } from '../support/locks.ts'

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL, TIER_THRESHOLDS: 'silver:10000,gold:50000' })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
})
afterAll(async () => {
  await db.destroy()
})

const DAY = 86_400_000
const source = () => `shop${randomUUID().slice(0, 8)}`
function order(src: string, customer: Order['customer'], daysAgo: number, total: number): Order {
  return {
    source: src,
    orderId: randomUUID(),
    customer,
    orderedAt: new Date(Date.now() - daysAgo * DAY),
    lines: [
      { sku: 'SOFA-1', name: 'Sofa', quantity: 1, unitPrice: total - 500 },
      { sku: 'ARM-1', quantity: 1, unitPrice: 500 },
    ],
    total,
  }
}

/** The same orders given to `customerId` one by one through recordPurchase. */
async function recordOneByOne(customerId: string, orders: Order[]) {
  for (const o of orders) {
    await db.transaction().execute((trx) =>
      recordPurchase(trx, env, {
        channel: 'online',
        source: `${o.source}-ref`,
        externalId: o.orderId,
        customerId,
        purchasedAt: o.orderedAt,
        lines: o.lines,
        total: o.total,
      }),
    )
  }
}

const stats = (id: string) =>
  db
    .selectFrom('customer')
    .select([
      'points',
      'tier',
      'purchase_count',
      'total_spent',
      'spend_12m',
      'first_purchase_at',
      'last_purchase_at',
    ])
    .where('id', '=', id)
    .executeTakeFirstOrThrow()
const ledger = (id: string) =>
  db
    .selectFrom('points_ledger')
    .select(['delta', 'reason'])
    .where('customer_id', '=', id)
    .orderBy('delta')
    .execute()

describe('recordOrderBatch', () => {
  // The batch's purchases lock their customer (foreign key) before the spend is recomputed.
  it('keeps a register purchase that commits while the batch recomputes the spend', async () => {
    const src = source()
    const onlineId = `oc-${src}`
    const c = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: onlineId }],
    })
    // A scan for the same customer, recorded and not yet committed: it holds the customer's lock.
    const scan = await heldTransaction(db, async (trx) => {
      await recordPurchase(trx, env, {
        channel: 'store',
        source: `${src}-store`,
        externalId: randomUUID(),
        customerId: c.id,
        purchasedAt: new Date(),
        lines: [{ sku: 'LAMP-1', quantity: 1, unitPrice: 7_000 }],
        total: 7_000,
      })
    })
    const batch = recordOrderBatch(db, env, [order(src, { externalId: onlineId }, 3, 30_000)])
    await lockWaitOn(db, 'customer')
    scan.commit()
    await scan.committed
    expect((await batch)[0]).toMatchObject({ outcome: { created: true, customerId: c.id } })
    expect(await stats(c.id)).toMatchObject({
      purchase_count: 2,
      total_spent: '37000',
      spend_12m: '37000',
    })
  })

  it('gives an order to the survivor when its customer is merged while the batch is written', async () => {
    const src = source()
    const onlineId = `oc-${src}`
    const shop = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: onlineId }],
    })
    const friend = await createCustomer(db, { line: true })
    // An account link merging the shop customer into the LINE friend, not yet committed: the
    // batch finds the shop customer still live, then waits for it.
    const link = await heldTransaction(db, async (trx) => {
      await mergeCustomers(trx, { survivorId: friend.id, mergedId: shop.id, reason: 'test' })
    })
    const batch = recordOrderBatch(db, env, [order(src, { externalId: onlineId }, 3, 30_000)])
    await lockWaitOn(db, 'customer')
    link.commit()
    await link.committed
    expect((await batch)[0]).toMatchObject({ outcome: { created: true, customerId: friend.id } })
    const purchases = db.selectFrom('purchase').select('customer_id').where('source', '=', src)
    expect(await purchases.execute()).toEqual([{ customer_id: friend.id }])
    expect(await stats(friend.id)).toMatchObject({ points: 300, purchase_count: 1 })
    expect(await stats(shop.id)).toMatchObject({ points: 0, purchase_count: 0 })
    expect(await ledger(friend.id)).toEqual([{ delta: 300, reason: 'earn' }])
  })

  it('gives matched customers the same stats and points as recordPurchase', async () => {
    const src = source()
    const onlineId = `oc-${src}`
    const email = `${src}@example.com`
    const newOnlineId = `oc-new-${src}`
    const byOnlineId = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: onlineId }],
    })
    const byEmail = await createCustomer(db, { identities: [{ kind: 'email', value: email }] })
    const refOnline = await createCustomer(db)
    const refEmail = await createCustomer(db)

    const forOnline = [
      order(src, { externalId: onlineId }, 3, 30_000),
      order(src, { externalId: onlineId, email: `other-${email}` }, 400, 40_000),
    ]
    const forEmail = [
      // Waits for its online id, which the next order attaches to the customer by email.
      order(src, { externalId: newOnlineId }, 10, 8_000),
      order(src, { externalId: newOnlineId, email }, 20, 5_000),
      order(src, { externalId: newOnlineId }, 500, 70_000),
      order(src, { email }, 1, 999),
    ]
    const unmatched = order(src, { email: `nobody-${email}` }, 2, 1_000)
    const orders = [forEmail[0], ...forOnline, ...forEmail.slice(1), unmatched] as Order[]

    const results = await recordOrderBatch(db, env, orders)
    expect(results.map((r) => ('outcome' in r ? r.outcome.customerId : 'error'))).toEqual([
      null,
      byOnlineId.id,
      byOnlineId.id,
      byEmail.id,
      byEmail.id,
      byEmail.id,
      null,
    ])
    await recordOneByOne(refOnline.id, forOnline)
    await recordOneByOne(refEmail.id, forEmail)

    expect(await stats(byOnlineId.id)).toEqual(await stats(refOnline.id))
    expect(await stats(byEmail.id)).toEqual(await stats(refEmail.id))
    expect(await ledger(byOnlineId.id)).toEqual(await ledger(refOnline.id))
    expect(await ledger(byEmail.id)).toEqual(await ledger(refEmail.id))
    const owner = await db
      .selectFrom('identity')
      .select('customer_id')
      .where('kind', '=', 'online_customer')
      .where('value', '=', newOnlineId)
      .executeTakeFirstOrThrow()
    expect(owner.customer_id).toBe(byEmail.id)
    const lines = await db
      .selectFrom('purchase')
      .select(sql<string>`sum(cardinality(line_skus))`.as('n'))
      .where('source', '=', src)
      .executeTakeFirstOrThrow()
    expect(lines.n).toBe(String(orders.length * 2))

    // A re-run changes nothing.
    const before = await stats(byEmail.id)
    const again = await recordOrderBatch(db, env, orders)
    expect(again.every((r) => 'outcome' in r && !r.outcome.created)).toBe(true)
    expect(again.map((r) => ('outcome' in r ? r.outcome.purchaseId : null))).toEqual(
      results.map((r) => ('outcome' in r ? r.outcome.purchaseId : null)),
    )
    expect(await stats(byEmail.id)).toEqual(before)
  })

  it('holds a points balance at the most it can be (2147483647), written as a batch', async () => {
    const rated = { ...env, POINTS_RATE_PERCENT: 100 }
    const src = source()
    const shopId = `oc-${src}`
    const c = await createCustomer(db, { identities: [{ kind: 'online_customer', value: shopId }] })
    const big = () => order(src, { externalId: shopId }, 1, 2_000_000_000)
    // Written as a batch (writeOrderBatch resolves), twice: in one batch, and on top of it.
    for (const orders of [[big(), big()], [big()]]) {
      const outcomes = await db.transaction().execute((trx) => writeOrderBatch(trx, rated, orders))
      expect(outcomes.every((o) => o.created && o.customerId === c.id)).toBe(true)
    }
    expect(await stats(c.id)).toMatchObject({
      points: 2_147_483_647,
      purchase_count: 3,
      total_spent: '6000000000',
    })
  })

  it('falls back to one order at a time when an order links customers that need merging', async () => {
    const src = source()
    const email = `${src}@example.com`
    const erased = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: `oc-${src}` }],
    })
    await db
      .updateTable('customer')
      .set({ erased_at: new Date() })
      .where('id', '=', erased.id)
      .execute()
    const live = await createCustomer(db, { identities: [{ kind: 'email', value: email }] })
    const ok = order(src, { email }, 1, 2_000)
    const bad = order(src, { externalId: `oc-${src}`, email }, 1, 3_000)
    const results = await recordOrderBatch(db, env, [ok, bad])
    expect('outcome' in results[0]! && results[0].outcome.customerId).toBe(live.id)
    expect('error' in results[1]!).toBe(true)
    expect(await stats(live.id)).toMatchObject({ purchase_count: 1, total_spent: '2000' })
  })

  it('writes a batch holding orders recorded before and repeated ones without falling back to one by one', async () => {
    const src = source()
    const customer = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: `${src}-c` }],
    })
    const known = order(src, { externalId: `${src}-c` }, 3, 20_000)
    const [first] = await db.transaction().execute((trx) => writeOrderBatch(trx, env, [known]))
    const fresh = order(src, { externalId: `${src}-c` }, 2, 30_000)
    // The same order twice in the batch: the first wins (a changed one: order-batch-replay.test.ts).
    const twice = { ...fresh }
    // writeOrderBatch itself, not recordOrderBatch (whose one-by-one retry would hide a failure).
    const outcomes = await db
      .transaction()
      .execute((trx) => writeOrderBatch(trx, env, [known, fresh, twice]))
    expect(outcomes.map((o) => o.created)).toEqual([false, true, false])
    expect(outcomes[0]?.purchaseId).toBe(first?.purchaseId)
    expect(outcomes[2]?.purchaseId).toBe(outcomes[1]?.purchaseId)
    const rows = await db
      .selectFrom('purchase')
      .select(['total', 'customer_id'])
      .where('source', '=', src)
      .orderBy('total')
      .execute()
    expect(rows).toEqual([
      { total: 20_000, customer_id: customer.id },
      { total: 30_000, customer_id: customer.id },
    ])
    expect(await stats(customer.id)).toMatchObject({ purchase_count: 2, total_spent: '50000' })
  })

  it('keeps an unmatched order waiting on its email too, until its shop id is attached', async () => {
    const src = source()
    const waitingEmail = `${src}-w@example.com`
    const knownEmail = `${src}-k@example.com`
    const customer = await createCustomer(db, {
      identities: [{ kind: 'email', value: knownEmail }],
    })
    const waiting = order(src, { externalId: `${src}-c`, email: waitingEmail }, 2, 10_000)
    await recordOrderBatch(db, env, [waiting])
    const pending = () =>
      db
        .selectFrom('purchase')
        .select(['customer_id', 'pending_identity_kind', 'pending_identity_value', 'pending_email'])
        .where('source', '=', src)
        .where('external_id', '=', waiting.orderId)
        .executeTakeFirstOrThrow()
    expect(await pending()).toEqual({
      customer_id: null,
      pending_identity_kind: 'online_customer',
      pending_identity_value: `${src}-c`,
      pending_email: waitingEmail,
    })

    // A later order matched by email gives the shop id to its customer, and with it the order.
    await recordOrderBatch(db, env, [
      order(src, { externalId: `${src}-c`, email: knownEmail }, 1, 5_000),
    ])
    expect(await pending()).toEqual({
      customer_id: customer.id,
      pending_identity_kind: null,
      pending_identity_value: null,
      pending_email: null,
    })
  })
})
