import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { orderSchema } from '../../src/orders/order.schemas.ts'
import { recordOrder } from '../../src/orders/order.service.ts'
import type { Database } from '../../src/platform/db.ts'
import { createCustomer } from '../customers/factories.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { heldTransaction, lockWaitOn } from '../support/locks.ts'

// A shop system sends an order again when it missed our answer. The same order gets the first
// answer; a different one under a used order id is refused, and changes nothing.

let kizuna: TestKizuna
let db: Database
let importKey: string
beforeAll(async () => {
  kizuna = await startTestKizuna()
  db = kizuna.deps.db
  importKey = (await createApiKey(db, { storeId: null, scopes: ['import'] })).key
})
afterAll(async () => {
  await kizuna?.stopAll()
})

const postOrder = (body: unknown) =>
  fetch(`${kizuna.baseUrl}/api/orders`, {
    method: 'POST',
    headers: { authorization: `Bearer ${importKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })

const order = (customer: Record<string, string>, total = 1_000) => ({
  source: 'webshop',
  orderId: `W-${randomUUID()}`,
  customer,
  orderedAt: new Date(Date.now() - 86_400_000).toISOString(),
  lines: [{ sku: 'LAMP-1', quantity: 1, unitPrice: total }],
  total,
})
const shopId = () => `shop-${randomUUID()}`
const email = () => `${randomUUID().slice(0, 8)}@example.com`

const purchaseOf = (orderId: string) =>
  db
    .selectFrom('purchase')
    .select(['id', 'customer_id', 'total', 'pending_identity_value', 'line_skus'])
    .where('external_id', '=', orderId)
    .execute()
const holderOf = async (value: string) =>
  (await db.selectFrom('identity').select('customer_id').where('value', '=', value).execute()).map(
    (r) => r.customer_id,
  )
const stats = (id: string) =>
  db
    .selectFrom('customer')
    .select(['purchase_count', 'total_spent', 'points'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow()

async function expectChanged(res: Response, field: 'customer' | 'total' | 'lines' | 'orderedAt') {
  expect(res.status).toBe(409)
  const error = await errorOf(res)
  expect(error.code).toBe('CONFLICT')
  expect(error.message).toMatch(new RegExp(`^${field}: order W-.* was recorded before`))
  expect(error.details).toEqual([{ field, message: expect.any(String) }])
  return error
}

describe('POST /api/orders sent again', () => {
  it('answers 409 naming the customer for another customer, and links no identity', async () => {
    const e1 = shopId()
    const e2 = shopId()
    const mail = email()
    const a = await createCustomer(db, { identities: [{ kind: 'online_customer', value: e1 }] })
    const c = await createCustomer(db, { identities: [{ kind: 'email', value: mail }] })
    const first = order({ externalId: e1 })
    expect(await (await postOrder(first)).json()).toMatchObject({ customerId: a.id })
    const before = await purchaseOf(first.orderId)

    for (const total of [999_999, 1_000]) {
      const again = {
        ...first,
        customer: { externalId: e2, email: mail },
        total,
        lines: [{ sku: 'OTHER', quantity: 1, unitPrice: total }],
      }
      const error = await expectChanged(await postOrder(again), 'customer')
      // Nothing of the recorded order is told about another customer.
      expect(error.message).not.toContain('1000')
    }
    expect(await purchaseOf(first.orderId)).toEqual(before)
    expect(before[0]).toMatchObject({ customer_id: a.id, total: 1_000 })
    expect(await holderOf(e2)).toEqual([])
    expect(await stats(c.id)).toEqual({ purchase_count: 0, total_spent: '0', points: 0 })
    expect(await stats(a.id)).toEqual({ purchase_count: 1, total_spent: '1000', points: 10 })
  })

  it('answers 409 naming the total for the same customer and another total', async () => {
    const e1 = shopId()
    const a = await createCustomer(db, { identities: [{ kind: 'online_customer', value: e1 }] })
    const first = order({ externalId: e1 })
    expect((await postOrder(first)).status).toBe(201)
    const error = await expectChanged(await postOrder({ ...first, total: 999 }), 'total')
    expect(error.message).toContain('with total 1000')
    expect((await purchaseOf(first.orderId))[0]).toMatchObject({ customer_id: a.id, total: 1_000 })
    expect(await stats(a.id)).toEqual({ purchase_count: 1, total_spent: '1000', points: 10 })
  })

  it('answers 409 naming the lines for the same total and other lines, the same goods replayed', async () => {
    const e1 = shopId()
    const a = await createCustomer(db, { identities: [{ kind: 'online_customer', value: e1 }] })
    const lamps = { sku: 'LAMP-1', quantity: 2, unitPrice: 300 }
    const shade = { sku: 'SHADE-1', name: 'Shade', quantity: 1, unitPrice: 400 }
    const first = { ...order({ externalId: e1 }), lines: [lamps, shade] }
    const created = (await (await postOrder(first)).json()) as Record<string, unknown>
    expect(created).toMatchObject({ created: true, customerId: a.id })
    const before = await purchaseOf(first.orderId)

    for (const lines of [
      [{ sku: 'CHAIR-1', quantity: 1, unitPrice: 1_000 }],
      [
        { ...lamps, quantity: 1 },
        { ...shade, unitPrice: 700 },
      ],
    ]) {
      const error = await expectChanged(await postOrder({ ...first, lines }), 'lines')
      expect(error.message).toContain(`order ${first.orderId} was recorded before with other lines`)
    }
    expect(await purchaseOf(first.orderId)).toEqual(before)
    expect(await stats(a.id)).toEqual({ purchase_count: 1, total_spent: '1000', points: 10 })

    // The same goods in another order of lines, or one of them split in two: the first answer.
    const regrouped = [shade, { ...lamps, quantity: 1 }, { ...lamps, quantity: 1 }]
    const replay = await postOrder({ ...first, lines: regrouped })
    expect(replay.status).toBe(200)
    expect(await replay.json()).toEqual({ ...created, created: false })
    expect(await purchaseOf(first.orderId)).toEqual(before)
  })

  it('answers 409 naming orderedAt for another time, and replays the same time in another offset', async () => {
    const e1 = shopId()
    const a = await createCustomer(db, { identities: [{ kind: 'online_customer', value: e1 }] })
    const first = { ...order({ externalId: e1 }), orderedAt: '2026-11-20T01:30:00Z' }
    const created = (await (await postOrder(first)).json()) as Record<string, unknown>
    expect(created).toMatchObject({ created: true, customerId: a.id })
    const recordedAt = () =>
      db
        .selectFrom('purchase')
        .select('purchased_at')
        .where('external_id', '=', first.orderId)
        .executeTakeFirstOrThrow()

    // An hour later, in UTC or in Japan time: another order under a used id.
    for (const orderedAt of ['2026-11-20T02:30:00Z', '2026-11-20T11:30:00+09:00']) {
      const error = await expectChanged(await postOrder({ ...first, orderedAt }), 'orderedAt')
      expect(error.message).toBe(
        `orderedAt: order ${first.orderId} was recorded before as ordered at ` +
          '2026-11-20T01:30:00.000Z; nothing was changed: a different order needs its own order id',
      )
    }
    expect(await recordedAt()).toEqual({ purchased_at: new Date('2026-11-20T01:30:00Z') })
    expect(await stats(a.id)).toEqual({ purchase_count: 1, total_spent: '1000', points: 10 })

    // The same instant written in Japan time: the same order.
    const replay = await postOrder({ ...first, orderedAt: '2026-11-20T10:30:00+09:00' })
    expect(replay.status).toBe(200)
    expect(await replay.json()).toEqual({ ...created, created: false })
  })

  it("tells nothing of an erased customer's order in a 409: the field, not its total or goods", async () => {
    const e1 = shopId()
    const a = await createCustomer(db, { identities: [{ kind: 'online_customer', value: e1 }] })
    const lamps = { sku: 'LAMP-7', quantity: 2, unitPrice: 617 }
    const first = { ...order({ externalId: e1 }, 1_234), lines: [lamps] }
    expect((await postOrder(first)).status).toBe(201)
    await eraseCustomer(db, a.id)
    const before = await purchaseOf(first.orderId)

    // Anyone sending that order id again: another total, or the same total with other goods.
    const total = await expectChanged(await postOrder({ ...first, total: 999 }), 'total')
    const chair = { sku: 'CHAIR-1', quantity: 1, unitPrice: 1_234 }
    const lines = await expectChanged(await postOrder({ ...first, lines: [chair] }), 'lines')
    const earlier = new Date(Date.parse(first.orderedAt) - 3_600_000).toISOString()
    const orderedAt = await expectChanged(
      await postOrder({ ...first, orderedAt: earlier }),
      'orderedAt',
    )
    expect(orderedAt.message).toContain('was recorded before as ordered at another time')
    expect(orderedAt.message).not.toContain(first.orderedAt.slice(0, 13))
    for (const error of [total, lines, orderedAt]) {
      const told = JSON.stringify([error.message, error.details]).replace(first.orderId, '')
      for (const recorded of ['LAMP-7', '617', '2 recorded']) expect(told).not.toContain(recorded)
    }
    expect(total.message.replace(first.orderId, '')).not.toContain('1234')
    expect(await purchaseOf(first.orderId)).toEqual(before)
  })

  it("answers the order's owner, after a merge too, and attaches nothing the replay names", async () => {
    const mailA = email()
    const a = await createCustomer(db, { identities: [{ kind: 'email', value: mailA }] })
    const s = await createCustomer(db)
    const first = order({ email: mailA })
    const created = (await (await postOrder(first)).json()) as Record<string, unknown>
    expect(created).toMatchObject({ created: true, customerId: a.id })
    await db
      .transaction()
      .execute((trx) => mergeCustomers(trx, { survivorId: s.id, mergedId: a.id, reason: 'test' }))
    const replay = await postOrder(first)
    expect(replay.status).toBe(200)
    expect(await replay.json()).toEqual({ ...created, created: false, customerId: s.id })

    // The same customer (by the email), now with a shop id: the first answer, and the shop id
    // is not linked by an order that was recorded already.
    const e3 = shopId()
    const withId = await postOrder({ ...first, customer: { externalId: e3, email: mailA } })
    expect(withId.status).toBe(200)
    expect(await withId.json()).toMatchObject({ created: false, customerId: s.id })
    expect(await holderOf(e3)).toEqual([])
    expect(await stats(s.id)).toMatchObject({ purchase_count: 1, total_spent: '1000' })
  })

  it('replays an unmatched order as unmatched, and refuses it for another shop id', async () => {
    const e4 = shopId()
    const first = order({ externalId: e4 })
    expect(await (await postOrder(first)).json()).toMatchObject({ customerId: null })
    const replay = await postOrder(first)
    expect(replay.status).toBe(200)
    expect(await replay.json()).toMatchObject({ created: false, customerId: null })
    await expectChanged(
      await postOrder({ ...first, customer: { externalId: shopId() } }),
      'customer',
    )
    expect(await purchaseOf(first.orderId)).toEqual([
      expect.objectContaining({ customer_id: null, pending_identity_value: e4 }),
    ])
  })

  it('replays an unmatched order recorded before its email was kept (pending_email null)', async () => {
    const first = order({ externalId: shopId(), email: email() })
    expect((await postOrder(first)).status).toBe(201)
    // Orders recorded before migration 20261207T040100 kept no pending email.
    await db
      .updateTable('purchase')
      .set({ pending_email: null })
      .where('external_id', '=', first.orderId)
      .execute()
    const replay = await postOrder(first)
    expect(replay.status).toBe(200)
    expect(await replay.json()).toMatchObject({ created: false, customerId: null })
    await expectChanged(
      await postOrder({ ...first, customer: { externalId: shopId(), email: email() } }),
      'customer',
    )
  })

  it('writes nothing for an order another request records meanwhile, not even the shop id', async () => {
    const e5 = shopId()
    const mail = email()
    const body = order({ externalId: e5, email: mail })
    // Request A records it unmatched (no customer has the email yet) and has not committed...
    const a = await heldTransaction(db, async (trx) => {
      await recordOrder(trx, kizuna.deps.env, orderSchema.parse(body))
    })
    // ...when the email's customer appears, and request B, sent again, finds that customer,
    // attaches the shop id to them and waits on A's order row.
    const c = await createCustomer(db, { identities: [{ kind: 'email', value: mail }] })
    const b = postOrder(body)
    await lockWaitOn(db, 'purchase')
    a.commit()
    await a.committed
    const replay = await b
    expect(replay.status).toBe(200)
    expect(await replay.json()).toMatchObject({ created: false, customerId: null })
    expect(await holderOf(e5)).toEqual([])
    expect(await stats(c.id)).toEqual({ purchase_count: 0, total_spent: '0', points: 0 })
  })
})
