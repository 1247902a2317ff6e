import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { orderSchema } from '../../src/orders/order.schemas.ts'
import { recordOrder, recordOrderBatch } from '../../src/orders/order.service.ts'
import { createCustomer } from '../customers/factories.ts'
import { cli } from '../support/cli.ts'
import { tempFiles } from '../support/files.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { backendPid, heldTransaction, lockWaitFor } from '../support/locks.ts'
import { orderOf } from './order-import-fixtures.ts'

// An order naming a new shop account and an email held by a customer with another shop account
// is kept unmatched, waiting for its own shop account: two shop accounts are never merged (as
// the customer import refuses them: OTHER_SHOP_ACCOUNT).

let kizuna: TestKizuna
let importKey: string
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  kizuna = await startTestKizuna()
  importKey = (await createApiKey(kizuna.deps.db, { storeId: null, scopes: ['import'] })).key
  file = await tempFiles('order-shops')
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

const tag = () => randomUUID().slice(0, 8)

/** Taro: shop account C1 and an email. */
async function taro() {
  const t = tag()
  const shop = `C1-${t}`
  const email = `taro-${t}@example.com`
  const customer = await createCustomer(kizuna.deps.db, {
    displayName: 'Taro',
    email,
    identities: [
      { kind: 'online_customer', value: shop },
      { kind: 'email', value: email },
    ],
  })
  return { id: customer.id, shop, email }
}

const identitiesOf = (customerId: string) =>
  kizuna.deps.db
    .selectFrom('identity')
    .select(['kind', 'value'])
    .where('customer_id', '=', customerId)
    .where('kind', '=', 'online_customer')
    .orderBy('value')
    .execute()

const purchaseOf = (source: string, orderId: string) =>
  kizuna.deps.db
    .selectFrom('purchase')
    .select(['customer_id', 'pending_identity_kind', 'pending_identity_value', 'pending_email'])
    .where('source', '=', source)
    .where('external_id', '=', orderId)
    .executeTakeFirstOrThrow()

const nameOf = (customerId: string) =>
  kizuna.deps.db
    .selectFrom('customer')
    .select(['display_name', 'email', 'purchase_count'])
    .where('id', '=', customerId)
    .executeTakeFirstOrThrow()

/** `import customers` of `C7,hanako7@example.com,Hanako`: Hanako signs up with her own email. */
async function hanakoSignsUp(shop: string) {
  const csv = await file('csv', [
    'external_id,email,name',
    `${shop},hanako-${shop}@example.com,Hanako`,
  ])
  const result = await cli(['import', 'customers', csv])
  expect(result.code, result.stderr).toBe(0)
  return result
}

/** Taro untouched: his name, email, shop account only, and no purchase. */
async function expectTaroUntouched(t: { id: string; shop: string; email: string }) {
  expect(await identitiesOf(t.id)).toEqual([{ kind: 'online_customer', value: t.shop }])
  expect(await nameOf(t.id)).toEqual({ display_name: 'Taro', email: t.email, purchase_count: 0 })
}

/**
 * An order naming shop account C7 and an email nobody held (it waits on both); then Taro, who
 * holds C5, gets the email (`import customers` of `C5,email,Taro`).
 */
async function orderWaitingBesideTaro() {
  const t = tag()
  const c5 = `C5-${t}`
  const email = `taro-${t}@example.com`
  const c7 = `C7-${tag()}`
  const order = orderOf('webshop', { externalId: c7, email }, 5000)
  expect(await (await postOrder(order)).json()).toMatchObject({ customerId: null })
  expect((await purchaseOf('webshop', order.orderId)).pending_email).toBe(email)
  const taroId = (
    await createCustomer(kizuna.deps.db, {
      displayName: 'Taro',
      identities: [{ kind: 'online_customer', value: c5 }],
    })
  ).id
  const csv = await file('csv', ['external_id,email,name', `${c5},${email},Taro`])
  const imported = await cli(['import', 'customers', csv])
  expect(imported.code, imported.stderr).toBe(0)
  return { order, taroId, c5, c7, email }
}

describe('an order naming a new shop account and an email held by another shop account', () => {
  it('POST /api/orders keeps it unmatched, waiting for its shop account, and Hanako gets it', async () => {
    const t = await taro()
    const c7 = `C7-${tag()}`
    const order = orderOf('webshop', { externalId: c7, email: t.email }, 5000)
    const res = await postOrder(order)
    expect(res.status).toBe(201)
    expect(await res.json()).toMatchObject({ created: true, customerId: null })
    expect(await purchaseOf('webshop', order.orderId)).toEqual({
      customer_id: null,
      pending_identity_kind: 'online_customer',
      pending_identity_value: c7,
      // Not the email: Taro holds it, and the nightly refresh would give Taro the order.
      pending_email: null,
    })
    await expectTaroUntouched(t)

    // Sent again: the same order, nothing written.
    const again = await postOrder(order)
    expect(again.status).toBe(200)

    const imported = await hanakoSignsUp(c7)
    expect(imported.stdout).toContain('created 1')
    await expectTaroUntouched(t)
    const hanako = (await purchaseOf('webshop', order.orderId)).customer_id
    expect(hanako).not.toBeNull()
    expect(hanako).not.toBe(t.id)
    expect(await nameOf(hanako!)).toMatchObject({ display_name: 'Hanako', purchase_count: 1 })
  })

  it('an order waiting on an email a customer with another shop account gets later keeps waiting for its shop account', async () => {
    const { order, taroId, c5, c7, email } = await orderWaitingBesideTaro()
    expect(await purchaseOf('webshop', order.orderId)).toMatchObject({
      customer_id: null,
      pending_identity_kind: 'online_customer',
      pending_identity_value: c7,
    })
    await expectTaroUntouched({ id: taroId, shop: c5, email })

    await hanakoSignsUp(c7)
    const hanako = (await purchaseOf('webshop', order.orderId)).customer_id
    expect(hanako).not.toBeNull()
    expect(hanako).not.toBe(taroId)
  })

  it("keeps waiting for its shop account when the email's holder is erased", async () => {
    const { order, taroId, c7 } = await orderWaitingBesideTaro()

    await eraseCustomer(kizuna.deps.db, taroId)

    // Taro's address is gone from it; the shop account it waits for, Hanako's, is not.
    expect(await purchaseOf('webshop', order.orderId)).toEqual({
      customer_id: null,
      pending_identity_kind: 'online_customer',
      pending_identity_value: c7,
      pending_email: null,
    })
    // Sent again: the same order.
    expect((await postOrder(order)).status).toBe(200)
    await hanakoSignsUp(c7)
    const hanako = (await purchaseOf('webshop', order.orderId)).customer_id
    expect(hanako).not.toBeNull()
    expect(await nameOf(hanako!)).toMatchObject({ display_name: 'Hanako', purchase_count: 1 })
  })

  it('POST /api/orders still attaches the shop account to an email holder with none', async () => {
    const email = `jiro-${tag()}@example.com`
    const jiro = await createCustomer(kizuna.deps.db, {
      identities: [{ kind: 'email', value: email }],
    })
    const c8 = `C8-${tag()}`
    const res = await postOrder(orderOf('webshop', { externalId: c8, email }, 5000))
    expect(await res.json()).toMatchObject({ created: true, customerId: jiro.id })
    expect(await identitiesOf(jiro.id)).toEqual([{ kind: 'online_customer', value: c8 }])
  })

  /**
   * Saburo, with an email and no shop account, gets shop account A from an order whose
   * transaction holds his row until `commit`; the other order sent meanwhile (shop account B,
   * the same email) waits for it.
   */
  async function whileSaburoGetsShopAccountA() {
    const email = `saburo-${tag()}@example.com`
    const saburo = await createCustomer(kizuna.deps.db, {
      identities: [{ kind: 'email', value: email }],
    })
    const [a, b] = [`CA-${tag()}`, `CB-${tag()}`]
    let pid = 0
    const first = await heldTransaction(kizuna.deps.db, async (trx) => {
      pid = await backendPid(trx)
      const order = orderSchema.parse(orderOf('webshop', { externalId: a, email }, 4000))
      expect(await recordOrder(trx, kizuna.deps.env, order)).toMatchObject({
        customerId: saburo.id,
      })
    })
    const second = orderOf('webshop', { externalId: b, email }, 5000)
    /** Once `sending` waits for order 1: order 1 commits, and `sending` ends. */
    const afterFirstCommits = async <T>(sending: Promise<T>): Promise<T> => {
      await lockWaitFor(kizuna.deps.db, pid)
      first.commit()
      await first.committed
      return sending
    }
    /** Order 2 kept apart, waiting for B only; Saburo holds A only. */
    const expectKeptApart = async () => {
      expect(await purchaseOf('webshop', second.orderId)).toEqual({
        customer_id: null,
        pending_identity_kind: 'online_customer',
        pending_identity_value: b,
        pending_email: null,
      })
      expect(await identitiesOf(saburo.id)).toEqual([{ kind: 'online_customer', value: a }])
    }
    return { second, afterFirstCommits, expectKeptApart }
  }

  it('POST /api/orders keeps apart an order whose email holder got another shop account while it waited for them', async () => {
    const { second, afterFirstCommits, expectKeptApart } = await whileSaburoGetsShopAccountA()
    const res = await afterFirstCommits(postOrder(second))
    expect(res.status).toBe(201)
    expect(await res.json()).toMatchObject({ created: true, customerId: null })
    await expectKeptApart()
  })

  it('an import batch keeps it apart too when the email holder got another shop account while it waited for them', async () => {
    const { second, afterFirstCommits, expectKeptApart } = await whileSaburoGetsShopAccountA()
    const batch = recordOrderBatch(kizuna.deps.db, kizuna.deps.env, [orderSchema.parse(second)])
    const [result] = await afterFirstCommits(batch)
    expect(result).toMatchObject({ outcome: { created: true, customerId: null } })
    await expectKeptApart()
  })

  it('kizuna import orders keeps it unmatched too, also when the batch itself gave the holder a shop account', async () => {
    const t = await taro()
    const source = `shop${tag()}`
    const jiroEmail = `jiro-${tag()}@example.com`
    const jiro = await createCustomer(kizuna.deps.db, {
      identities: [{ kind: 'email', value: jiroEmail }],
    })
    const c7 = `C7-${tag()}`
    const c8 = `C8-${tag()}`
    const c9 = `C9-${tag()}`
    const orders = [
      orderOf(source, { externalId: c7, email: t.email }, 5000),
      // Jiro has no shop account: C8 becomes his, so C9 after it is someone else's.
      orderOf(source, { externalId: c8, email: jiroEmail }, 6000),
      orderOf(source, { externalId: c9, email: jiroEmail }, 7000),
    ]
    const ndjson = await file(
      'ndjson',
      orders.map((o) => JSON.stringify(o)),
    )
    const result = await cli(['import', 'orders', ndjson])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain('orders: created 1, unmatched 2')

    expect(await purchaseOf(source, orders[0]!.orderId)).toEqual({
      customer_id: null,
      pending_identity_kind: 'online_customer',
      pending_identity_value: c7,
      pending_email: null,
    })
    expect((await purchaseOf(source, orders[1]!.orderId)).customer_id).toBe(jiro.id)
    expect(await purchaseOf(source, orders[2]!.orderId)).toEqual({
      customer_id: null,
      pending_identity_kind: 'online_customer',
      pending_identity_value: c9,
      pending_email: null,
    })
    expect(await identitiesOf(jiro.id)).toEqual([{ kind: 'online_customer', value: c8 }])
    await expectTaroUntouched(t)

    // Imported again: all unchanged.
    expect((await cli(['import', 'orders', ndjson])).stdout).toContain('unchanged 3')

    await hanakoSignsUp(c7)
    await expectTaroUntouched(t)
    const hanako = (await purchaseOf(source, orders[0]!.orderId)).customer_id
    expect(hanako).not.toBeNull()
    expect(hanako).not.toBe(t.id)
    expect(await nameOf(hanako!)).toMatchObject({ display_name: 'Hanako', purchase_count: 1 })
  })
})
