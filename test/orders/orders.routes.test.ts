import { randomUUID } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { findCustomerByIdentity } from '../../src/customers/customer-lookup.service.ts'
import { createCustomer } from '../customers/factories.ts'
import { cli } from '../support/cli.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'

let kizuna: TestKizuna
let importKey: string
beforeAll(async () => {
  kizuna = await startTestKizuna()
  importKey = (await createApiKey(kizuna.deps.db, { storeId: null, scopes: ['import'] })).key
})
afterAll(async () => {
  await kizuna?.stopAll()
})

function postOrder(body: unknown, key = importKey) {
  return fetch(`${kizuna.baseUrl}/api/orders`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  })
}

const order = (over: Record<string, unknown> = {}) => ({
  source: 'webshop',
  orderId: `W-${randomUUID()}`,
  customer: {},
  orderedAt: '2026-11-20T10:00:00+09:00',
  lines: [
    { sku: 'SOFA-1', name: 'Sofa', quantity: 1, unitPrice: 89000 },
    { sku: 'ARM-1', quantity: 2, unitPrice: 39000 },
  ],
  total: 167000,
  ...over,
})

const purchaseOf = (orderId: string) =>
  kizuna.deps.db
    .selectFrom('purchase')
    .selectAll()
    .where('channel', '=', 'online')
    .where('source', '=', 'webshop')
    .where('external_id', '=', orderId)
    .execute()

describe('POST /api/orders', () => {
  it('records an order once, matched by online customer id', async () => {
    const shopId = `shop-${randomUUID()}`
    const customer = await createCustomer(kizuna.deps.db, {
      identities: [{ kind: 'online_customer', value: shopId }],
    })
    const body = order({ customer: { externalId: shopId } })
    const first = await postOrder(body)
    expect(first.status).toBe(201)
    const created = (await first.json()) as Record<string, unknown>
    expect(created).toMatchObject({ created: true, customerId: customer.id })
    const replay = await postOrder(body)
    expect(replay.status).toBe(200)
    expect(await replay.json()).toEqual({ ...created, created: false })

    const rows = await purchaseOf(body.orderId)
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ customer_id: customer.id, total: 167000, points_earned: 1670 })
    const stats = await kizuna.deps.db
      .selectFrom('customer')
      .select(['purchase_count', 'total_spent', 'points'])
      .where('id', '=', customer.id)
      .executeTakeFirstOrThrow()
    expect(stats).toEqual({ purchase_count: 1, total_spent: '167000', points: 1670 })
  })

  it('keeps an unmatched order, which attaches when the customer appears in an import', async () => {
    const shopId = `shop-${randomUUID()}`
    const body = order({ customer: { externalId: shopId, email: `${shopId}@example.com` } })
    const res = await postOrder(body)
    expect(res.status).toBe(201)
    expect(await res.json()).toMatchObject({ created: true, customerId: null })
    expect((await purchaseOf(body.orderId))[0]).toMatchObject({
      customer_id: null,
      pending_identity_kind: 'online_customer',
      pending_identity_value: shopId,
      // It waits on the email too, whichever appears first.
      pending_email: `${shopId}@example.com`,
    })

    const dir = await mkdtemp(join(tmpdir(), 'kizuna-orders-'))
    const csv = join(dir, 'customers.csv')
    await writeFile(csv, `external_id,name\n${shopId},Yui\n`)
    expect((await cli(['import', 'customers', csv])).stdout).toContain('created 1')

    const [purchase] = await purchaseOf(body.orderId)
    expect(purchase?.customer_id).toBeTruthy()
    expect(purchase).toMatchObject({
      pending_identity_kind: null,
      pending_email: null,
      points_earned: 1670,
    })
    const customer = await kizuna.deps.db
      .selectFrom('customer')
      .select(['display_name', 'purchase_count', 'points'])
      .where('id', '=', purchase!.customer_id!)
      .executeTakeFirstOrThrow()
    expect(customer).toEqual({ display_name: 'Yui', purchase_count: 1, points: 1670 })
  })

  it('keeps an order naming a shop id and an email, which attaches when only the email appears', async () => {
    const shopId = `shop-${randomUUID()}`
    const email = `${shopId}@example.com`
    const body = order({ customer: { externalId: shopId, email } })
    expect(await (await postOrder(body)).json()).toMatchObject({ customerId: null })

    const dir = await mkdtemp(join(tmpdir(), 'kizuna-orders-'))
    const csv = join(dir, 'customers.csv')
    await writeFile(csv, `email,name\n${email},Yui\n`)
    expect((await cli(['import', 'customers', csv])).stdout).toContain('created 1')

    // The order is the customer's the import made for the email.
    const imported = await findCustomerByIdentity(kizuna.deps.db, 'email', email)
    expect(imported).toBeDefined()
    const [purchase] = await purchaseOf(body.orderId)
    expect(purchase?.customer_id).toBe(imported)
    expect(purchase).toMatchObject({
      pending_identity_kind: null,
      pending_identity_value: null,
      pending_email: null,
      points_earned: 1670,
    })
  })

  it('answers 400 naming the field and records nothing', async () => {
    const body = order({ lines: [{ sku: 'SOFA-1', quantity: 0, unitPrice: 1.5 }] })
    const res = await postOrder(body)
    expect(res.status).toBe(400)
    const error = await errorOf(res)
    expect(error.message).toContain('lines.0.quantity')
    expect(error.message).toContain('lines.0.unitPrice')
    expect(await purchaseOf(body.orderId)).toHaveLength(0)

    const noDate = await postOrder(order({ orderedAt: 'yesterday' }))
    expect((await errorOf(noDate)).message).toContain('orderedAt: use an ISO 8601 date-time')
    const notJson = await postOrder('{')
    expect(notJson.status).toBe(400)
  })

  it('says what is wrong with a number out of range, not that it is not whole', async () => {
    const body = order({
      lines: [{ sku: 'SOFA-1', quantity: 100_001, unitPrice: -1 }],
      total: 2_000_000_001,
    })
    const res = await postOrder(body)
    expect(res.status).toBe(400)
    expect((await errorOf(res)).details).toEqual([
      { field: 'lines.0.quantity', message: 'at most 100000' },
      { field: 'lines.0.unitPrice', message: 'the price in whole yen, not below 0' },
      { field: 'total', message: 'the total in whole yen, at most 2000000000' },
    ])
    expect(await purchaseOf(body.orderId)).toHaveLength(0)
  })

  it('answers 400 for an order dated in the future, which would count in spend and tier for years', async () => {
    const shopId = `shop-${randomUUID()}`
    await createCustomer(kizuna.deps.db, {
      identities: [{ kind: 'online_customer', value: shopId }],
    })
    const nextYear = new Date(Date.now() + 400 * 86_400_000).toISOString()
    const body = order({ customer: { externalId: shopId }, orderedAt: nextYear })
    const res = await postOrder(body)
    expect(res.status).toBe(400)
    expect((await errorOf(res)).message).toContain('orderedAt: is in the future')
    expect(await purchaseOf(body.orderId)).toHaveLength(0)
    // A shop clock a few minutes fast is fine.
    const soon = order({ orderedAt: new Date(Date.now() + 5 * 60_000).toISOString() })
    expect((await postOrder(soon)).status).toBe(201)
  })

  it('answers 400 for an order dated before 1990, which no shop history holds (year 0 was stored as 1 BC)', async () => {
    for (const at of [
      '0000-01-01T00:00:00Z',
      '1900-01-01T00:00:00Z',
      '1989-12-31T23:59:59+09:00',
    ]) {
      const body = order({ orderedAt: at })
      const res = await postOrder(body)
      expect(res.status, at).toBe(400)
      const error = await errorOf(res)
      expect(error.message).toContain('orderedAt: is before 1990-01-01')
      expect(error.details).toEqual([{ field: 'orderedAt', message: expect.any(String) }])
      expect(await purchaseOf(body.orderId)).toHaveLength(0)
    }
    expect((await postOrder(order({ orderedAt: '1990-01-01T00:00:00+09:00' }))).status).toBe(201)
  })

  it('answers 400 naming the field for a NUL character, which no Postgres text can hold, and records nothing', async () => {
    const body = order({
      orderId: `W-${randomUUID()}`,
      lines: [{ sku: 'SOFA-1', name: 'So\u0000fa', quantity: 1, unitPrice: 167000 }],
    })
    const res = await postOrder(body)
    expect(res.status).toBe(400)
    const error = await errorOf(res)
    expect(error.code).toBe('BAD_REQUEST')
    expect(error.message).toContain('lines.0.name')
    expect(await purchaseOf(body.orderId)).toHaveLength(0)
  })

  it('answers 400 naming the line whose name holds a control character (BEL, DEL, C1), and records nothing', async () => {
    for (const name of ['So\u0007fa', 'So\u001bfa', 'So\u007ffa', 'So\u0085fa']) {
      const body = order({
        lines: [{ sku: 'SOFA-1', name, quantity: 1, unitPrice: 167000 }],
      })
      const res = await postOrder(body)
      expect(res.status, JSON.stringify(name)).toBe(400)
      const error = await errorOf(res)
      expect(error.message).toMatch(
        /^lines\.0\.name: contains a control character \(\\u00(07|1b|7f|85)\)$/,
      )
      expect(await purchaseOf(body.orderId)).toHaveLength(0)
    }
  })

  it('records a line break or tab in a name as one space (a spreadsheet cell Alt+Enter)', async () => {
    const body = order({
      lines: [
        { sku: 'SOFA-1', name: '\tSofa \r\n 3-seat\tgrey\n', quantity: 1, unitPrice: 167000 },
      ],
    })
    expect((await postOrder(body)).status).toBe(201)
    expect((await purchaseOf(body.orderId))[0]?.line_names).toEqual(['Sofa 3-seat grey'])
  })

  it('answers 400 naming the field for a lone UTF-16 surrogate, which Postgres json refuses (a 500), and records nothing', async () => {
    const orderId = `W-${randomUUID()}`
    // JSON.stringify writes the lone half as the escape `\ud800`, as a shop's exporter might.
    const res = await postOrder(order({ orderId: `${orderId}\ud800` }))
    expect(res.status).toBe(400)
    expect(await errorOf(res)).toMatchObject({
      code: 'BAD_REQUEST',
      message: 'orderId: contains an unpaired surrogate (half of a character)',
    })
    const named = await postOrder(
      order({
        orderId,
        lines: [{ sku: 'SOFA-1', name: 'So\udc00fa', quantity: 1, unitPrice: 167000 }],
      }),
    )
    expect(named.status).toBe(400)
    expect((await errorOf(named)).message).toBe(
      'lines.0.name: contains an unpaired surrogate (half of a character)',
    )
    const rows = await kizuna.deps.db
      .selectFrom('purchase')
      .select('id')
      .where('external_id', 'like', `${orderId}%`)
      .execute()
    expect(rows).toHaveLength(0)
  })

  it('answers 400 for a body that is not UTF-8: two Shift_JIS names would both be stored as U+FFFD', async () => {
    const orderId = `W-${randomUUID()}`
    const lines = [{ sku: 'SOFA-1', name: 'NAME', quantity: 1, unitPrice: 167000 }]
    const [before, after] = JSON.stringify(order({ orderId, lines })).split('NAME')
    // 加藤 and 佐藤 in Shift_JIS.
    for (const name of [
      [0x89, 0xc1, 0x93, 0xa1],
      [0x8d, 0xb2, 0x93, 0xa1],
    ]) {
      const res = await postOrder(
        Buffer.concat([Buffer.from(before!), Buffer.from(name), Buffer.from(after!)]),
      )
      expect(res.status).toBe(400)
      expect((await errorOf(res)).message).toBe('(body): is not UTF-8; send UTF-8 JSON')
    }
    expect(await purchaseOf(orderId)).toHaveLength(0)
  })

  it('needs a key with the import scope', async () => {
    const admin = (await createApiKey(kizuna.deps.db, { storeId: null, scopes: ['admin'] })).key
    expect((await postOrder(order(), admin)).status).toBe(403)
    expect((await postOrder(order(), 'nope')).status).toBe(401)
  })
})
