import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { saveProducts } from '../../src/catalogue/product.service.ts'
import { renderEmailMessage, renderLineMessage } from '../../src/flex/message-template.ts'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import { createPurchaseFollowUpVars } from '../../src/purchases/purchase-follow-up.service.ts'
import { insertStore } from '../../src/stores/store.repo.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import { makeCustomer, makeStoreKey, receipt, recordOnlinePurchase } from './fixtures.ts'

/** Two hours: nothing becomes due while the tests run (sending is tested with the engine). */
const DELAY_SECONDS = 7_200

let k: TestKizuna
let db: Database
let key: string
beforeAll(async () => {
  k = await startTestKizuna({ POST_PURCHASE_DELAY_SECONDS: String(DELAY_SECONDS) })
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
})
afterAll(async () => {
  await k.stopAll()
})

function scan(body: unknown) {
  return fetch(`${k.baseUrl}/api/pos/scans`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  })
}
async function scanReceipt(card: string, r: Record<string, unknown>) {
  const res = await scan({ barcode: card, receipt: r })
  expect(res.status).toBe(200)
  const body = (await res.json()) as ScanResponse
  if (!body.purchase) throw new Error('no purchase in the answer')
  return body.purchase
}
const deliveriesOf = (customerId: string) =>
  db.selectFrom('delivery').selectAll().where('customer_id', '=', customerId).execute()

describe('post-purchase follow-up', () => {
  it('a scanned receipt writes one pending delivery, due after the delay, and queues it', async () => {
    const c = await makeCustomer(db)
    const before = Date.now()
    // An offline register's receipt, replayed two days late: the delay counts from now.
    const r = receipt({ purchasedAt: new Date(before - 2 * 86_400_000).toISOString() })
    const purchase = await scanReceipt(c.card, r)
    const after = Date.now()

    const rows = await deliveriesOf(c.id)
    expect(rows).toHaveLength(1)
    const row = rows[0]!
    expect(row).toMatchObject({
      dedupe_key: `post-purchase:${purchase.id}`,
      kind: 'post-purchase',
      category: 'marketing',
      status: 'pending',
      template_id: 'purchase-follow-up',
      vars: { purchaseId: purchase.id },
      messages: null,
    })
    const due = row.send_after.getTime()
    expect(due).toBeGreaterThanOrEqual(before + DELAY_SECONDS * 1000 - 1_000)
    expect(due).toBeLessThanOrEqual(after + DELAY_SECONDS * 1000 + 1_000)

    // The job id scheme belongs to the delivery engine: find the job by its payload. It is
    // queued after the answer, with other scans' follow-ups (within ~20 ms).
    const job = await eventually(async () => {
      const delayed = await k.deps.queues.byName.delivery.getJobs(['delayed'])
      const jobs = delayed.filter((j) => j.data.deliveryIds?.includes(row.id))
      expect(jobs).toHaveLength(1)
      return jobs[0]!
    })
    expect(job.name).toBe('messaging.send-deliveries')
    expect(job.data).toEqual({ deliveryIds: [row.id] })
    expect(job.opts.delay).toBeGreaterThan(DELAY_SECONDS * 1000 - 10_000)
    expect(job.opts.delay).toBeLessThanOrEqual(DELAY_SECONDS * 1000)
    expect(job.timestamp + (job.opts.delay ?? 0)).toBeCloseTo(due, -3)

    // The register replays the receipt: nothing new.
    const again = await scan({ barcode: c.card, receipt: r })
    expect(((await again.json()) as ScanResponse).purchase?.replayed).toBe(true)
    expect(await deliveriesOf(c.id)).toHaveLength(1)
  })

  it('an online order gets no follow-up', async () => {
    const c = await makeCustomer(db)
    const shopId = `shop-${randomUUID()}`
    await db
      .insertInto('identity')
      .values({ customer_id: c.id, kind: 'online_customer', value: shopId })
      .execute()
    const importKey = (await createApiKey(db, { storeId: null, scopes: ['import'] })).key
    const res = await fetch(`${k.baseUrl}/api/orders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${importKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        source: 'webshop',
        orderId: `W-${randomUUID()}`,
        customer: { externalId: shopId },
        orderedAt: new Date().toISOString(),
        lines: [{ sku: 'SOFA-1', quantity: 1, unitPrice: 9_000 }],
        total: 9_000,
      }),
    })
    expect(res.status).toBe(201)
    const purchases = await db
      .selectFrom('purchase')
      .select('id')
      .where('customer_id', '=', c.id)
      .execute()
    expect(purchases).toHaveLength(1)
    expect(await deliveriesOf(c.id)).toEqual([])
  })
})

const purchaseFollowUpVars = createPurchaseFollowUpVars('Asia/Tokyo')
const followUpVarsOf = (customerId: string, purchaseId: string) =>
  purchaseFollowUpVars(db, { customerId, vars: { purchaseId } })

describe('purchaseFollowUpVars', () => {
  const s = randomUUID().slice(0, 8)
  const sku = (name: string) => `${name}-${s}`

  beforeAll(async () => {
    await saveProducts(db, [
      {
        sku: sku('SOFA'),
        name: 'Sofa Classic',
        price: 98_000,
        related_skus: [
          sku('ARM'),
          sku('TABLE'),
          sku('GHOST'),
          sku('CUSHION'),
          sku('LAMP'),
          sku('RUG'),
          sku('VASE'),
        ],
      },
      { sku: sku('CUSHION'), name: 'Cushion Soft', related_skus: [sku('VASE'), sku('ARM')] },
      {
        sku: sku('ARM'),
        name: 'Armchair',
        price: 45_000,
        image_url: 'https://img.example/arm.jpg',
      },
      { sku: sku('TABLE'), name: 'Side table', price: 12_000 },
      { sku: sku('LAMP'), name: 'Floor lamp', price: 3_000 },
      { sku: sku('RUG'), name: 'Rug' },
      { sku: sku('VASE'), name: 'Vase', price: 2_000 },
    ])
    // saveProducts accepts only https images; an http one left over from elsewhere is skipped.
    await db
      .updateTable('product')
      .set({ image_url: 'http://img.example/lamp.jpg' })
      .where('sku', '=', sku('LAMP'))
      .execute()
  })

  const recordFor = (customerId: string, lines: { sku: string; unitPrice: number }[]) =>
    recordOnlinePurchase(db, k.deps.env, customerId, lines)

  it('returns the lines and up to 3 related products the customer does not own', async () => {
    const c = await makeCustomer(db, { displayName: 'Sato Hanako' })
    // Owned already: the table. The lamp was bought on a receipt that was voided: not owned.
    await recordFor(c.id, [{ sku: sku('TABLE'), unitPrice: 12_000 }])
    const voided = await recordFor(c.id, [{ sku: sku('LAMP'), unitPrice: 3_000 }])
    await db
      .updateTable('purchase')
      .set({ voided_at: new Date() })
      .where('id', '=', voided.purchaseId)
      .execute()

    // 23:30 UTC two days ago: 08:30 the next day in Tokyo.
    const at = new Date(Date.now() - 2 * 86_400_000)
    at.setUTCHours(23, 30, 0, 0)
    const day = (d: Date) => d.toISOString().slice(0, 10).replaceAll('-', '/')
    const purchase = await scanReceipt(
      c.card,
      receipt({
        purchasedAt: at.toISOString(),
        lines: [
          { sku: sku('SOFA'), name: 'sofa (register)', quantity: 1, unitPrice: 98_000 },
          { sku: sku('CUSHION'), name: 'cushion', quantity: 2, unitPrice: 1_500 },
          { sku: 'BAG-1', name: 'Paper bag', quantity: 1, unitPrice: 0 },
          { sku: 'GIFT-1', quantity: 1, unitPrice: 0 },
        ],
        total: 101_000,
      }),
    )
    const vars = await purchaseFollowUpVars(db, {
      customerId: c.id,
      vars: { purchaseId: purchase.id },
    })
    expect(vars).toEqual({
      displayName: 'Sato Hanako',
      storeName: 'Test store',
      purchasedAt: `${day(new Date(at.getTime() + 86_400_000))} 08:30`,
      total: '¥101,000',
      lines: [
        { name: 'Sofa Classic', quantity: 1, amount: '¥98,000' },
        { name: 'Cushion Soft', quantity: 2, amount: '¥3,000' },
        { name: 'Paper bag', quantity: 1, amount: '¥0' },
        { name: 'GIFT-1', quantity: 1, amount: '¥0' },
      ],
      // TABLE owned, GHOST no product, CUSHION in this purchase; LAMP's image is not https.
      recommendations: [
        {
          sku: sku('ARM'),
          name: 'Armchair',
          price: '¥45,000',
          imageUrl: 'https://img.example/arm.jpg',
        },
        { sku: sku('LAMP'), name: 'Floor lamp', price: '¥3,000' },
        { sku: sku('RUG'), name: 'Rug', price: '' },
      ],
    })

    const utc = await createPurchaseFollowUpVars('UTC')(db, {
      customerId: c.id,
      vars: { purchaseId: purchase.id },
    })
    expect(utc?.purchasedAt).toBe(`${day(at)} 23:30`)
  })

  it("says 'お客様' without a name, and gives no recommendations when none are left", async () => {
    const c = await makeCustomer(db)
    await db.updateTable('customer').set({ display_name: null }).where('id', '=', c.id).execute()
    await recordFor(c.id, [
      { sku: sku('ARM'), unitPrice: 1 },
      { sku: sku('LAMP'), unitPrice: 1 },
      { sku: sku('RUG'), unitPrice: 1 },
      { sku: sku('TABLE'), unitPrice: 1 },
    ])
    const purchase = await scanReceipt(
      c.card,
      receipt({ lines: [{ sku: sku('CUSHION'), quantity: 1, unitPrice: 500 }], total: 500 }),
    )
    const vars = await purchaseFollowUpVars(db, {
      customerId: c.id,
      vars: { purchaseId: purchase.id },
    })
    expect(vars).toMatchObject({
      displayName: 'お客様',
      lines: [{ name: 'Cushion Soft', quantity: 1, amount: '¥500' }],
      recommendations: [{ sku: sku('VASE'), name: 'Vase', price: '¥2,000' }],
    })
  })

  it('renders for a customer imported with a name of up to 200 characters', async () => {
    const name = '山'.repeat(150)
    const c = await makeCustomer(db, { displayName: name })
    const purchase = await scanReceipt(c.card, receipt())
    const vars = await purchaseFollowUpVars(db, {
      customerId: c.id,
      vars: { purchaseId: purchase.id },
    })
    expect(vars?.displayName).toBe(`${'山'.repeat(99)}…`)
    const line = renderLineMessage('purchase-follow-up', vars!, { allowHttpImages: false })
    expect(JSON.stringify(line)).toContain('山'.repeat(99))
    expect(renderEmailMessage('purchase-follow-up', vars!).html).toContain('山'.repeat(99))
  })

  it('renders a product image whose URL has Japanese characters, a space or a | (the import takes it)', async () => {
    const c = await makeCustomer(db)
    const own = sku('JP')
    await saveProducts(db, [
      { sku: own, name: '花瓶', related_skus: [sku('JPIMG')] },
      {
        sku: sku('JPIMG'),
        name: '一輪挿し',
        image_url: 'https://img.example/商品 写真|[1].jpg?v=100%',
      },
    ])
    const purchase = await scanReceipt(
      c.card,
      receipt({ lines: [{ sku: own, quantity: 1, unitPrice: 500 }], total: 500 }),
    )
    const vars = await purchaseFollowUpVars(db, {
      customerId: c.id,
      vars: { purchaseId: purchase.id },
    })
    // Percent-encoded as UTF-8, as LINE asks of URLs.
    const encoded =
      'https://img.example/%E5%95%86%E5%93%81%20%E5%86%99%E7%9C%9F%7C%5B1%5D.jpg?v=100%25'
    expect(vars?.recommendations).toEqual([
      { sku: sku('JPIMG'), name: '一輪挿し', price: '', imageUrl: encoded },
    ])
    const line = renderLineMessage('purchase-follow-up', vars!)
    expect(JSON.stringify(line)).toContain(encoded)
    // Handlebars writes `=` as `&#x3D;` (attribute-safe).
    expect(renderEmailMessage('purchase-follow-up', vars!).html).toContain(
      encoded.replace('=', '&#x3D;'),
    )
  })

  it("keeps a product image's host, path and query but not its user:password, and leaves out an image whose host RFC 3986 refuses", async () => {
    const c = await makeCustomer(db)
    const own = sku('POT')
    await saveProducts(db, [
      { sku: own, name: 'Pot', related_skus: [sku('CRED'), sku('CURLY')] },
      { sku: sku('CRED'), name: 'Kettle', image_url: 'https://user:pa@img.example/k.jpg?v={1}#x' },
      // The URL parser takes `{` in a host; RFC 3986 (the template's format "uri") does not.
      { sku: sku('CURLY'), name: 'Teapot', image_url: 'https://img{1}.example/t.jpg' },
    ])
    const purchase = await scanReceipt(
      c.card,
      receipt({ lines: [{ sku: own, quantity: 1, unitPrice: 500 }], total: 500 }),
    )
    const vars = await followUpVarsOf(c.id, purchase.id)
    expect(vars?.recommendations).toEqual([
      {
        sku: sku('CRED'),
        name: 'Kettle',
        price: '',
        imageUrl: 'https://img.example/k.jpg?v=%7B1%7D#x',
      },
      // The message goes without the image rather than not at all.
      { sku: sku('CURLY'), name: 'Teapot', price: '' },
    ])
    expect(() => renderLineMessage('purchase-follow-up', vars!)).not.toThrow()
  })

  it('writes the control characters of names stored before they were refused as a space (the template refuses them)', async () => {
    const c = await makeCustomer(db, { displayName: 'Sato\u0007 Hanako\n' })
    const own = sku('BELL')
    await saveProducts(db, [
      { sku: own, name: 'Bell', related_skus: [sku('CHIME')] },
      { sku: sku('CHIME'), name: 'Wind\u001bchime\u0085' },
    ])
    const purchase = await scanReceipt(
      c.card,
      receipt({
        lines: [
          { sku: own, name: 'bell', quantity: 1, unitPrice: 500 },
          { sku: 'NOTE-1', name: 'Card', quantity: 1, unitPrice: 100 },
          { sku: 'WRAP-1', name: 'Wrap', quantity: 1, unitPrice: 0 },
        ],
        total: 600,
      }),
    )
    // A register's line name and a store name as they were stored before.
    const store = await insertStore(db, { code: `CC-${s}`, name: 'Shibuya\u0007' })
    await db
      .updateTable('purchase')
      .set({ line_names: ['bell', 'Card\t\u0001 set', '\u0001 '], store_id: store!.id })
      .where('id', '=', purchase.id)
      .execute()
    await db.updateTable('product').set({ name: 'Bell\u007f' }).where('sku', '=', own).execute()
    const vars = await followUpVarsOf(c.id, purchase.id)
    expect(vars).toMatchObject({
      displayName: 'Sato Hanako',
      storeName: 'Shibuya',
      // A name of control characters only: the sku, as for a line without a name.
      lines: [{ name: 'Bell' }, { name: 'Card set' }, { name: 'WRAP-1' }],
      recommendations: [{ sku: sku('CHIME'), name: 'Wind chime' }],
    })
    const line = renderLineMessage('purchase-follow-up', vars!)
    expect(JSON.stringify(line)).not.toMatch(/\\u00/)
    expect(renderEmailMessage('purchase-follow-up', vars!).text).toContain('- Card set ×1')
  })

  it('returns null for a voided, unknown or foreign purchase', async () => {
    const c = await makeCustomer(db)
    const other = await makeCustomer(db)
    const purchase = await scanReceipt(c.card, receipt())
    const load = (customerId: string, purchaseId: unknown) =>
      purchaseFollowUpVars(db, { customerId, vars: { purchaseId } })
    expect(await load(c.id, purchase.id)).not.toBeNull()
    expect(await load(other.id, purchase.id)).toBeNull()
    expect(await load(c.id, randomUUID())).toBeNull()
    expect(await load(c.id, 'not-a-uuid')).toBeNull()
    expect(await load(c.id, undefined)).toBeNull()
    await db
      .updateTable('purchase')
      .set({ voided_at: new Date() })
      .where('id', '=', purchase.id)
      .execute()
    expect(await load(c.id, purchase.id)).toBeNull()
  })
})
