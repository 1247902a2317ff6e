import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import type { VoidAnswer } from '../../src/pos/pos.service.ts'
import { makeCoupon, makeCustomer, makeStoreKey, postPos, receipt } from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { receiptRowsOf } from './receipt-rows.ts'

/** Nothing becomes due while the tests run: the sending itself is the delivery engine's test. */
const DELAY_SECONDS = 3_600

let k: TestKizuna
let db: Database
let key: string
beforeAll(async () => {
  k = await startTestKizuna({
    TIER_THRESHOLDS: 'silver:5000,gold:50000',
    POST_PURCHASE_DELAY_SECONDS: String(DELAY_SECONDS),
  })
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
})
afterAll(async () => {
  await k.stopAll()
})

const post = (path: string, body: unknown, auth: string | null = key) =>
  postPos(k.baseUrl, path, body, auth)
const voidReceipt = (receiptId: string, auth: string | null = key) =>
  post(`/receipts/${encodeURIComponent(receiptId)}/void`, {}, auth)

async function scanReceipt(card: string, r: Record<string, unknown>, auth = key) {
  const res = await post('/scans', { barcode: card, receipt: r }, auth)
  expect(res.status).toBe(200)
  const body = (await res.json()) as ScanResponse
  if (!body.purchase) throw new Error('no purchase in the answer')
  return body.purchase
}

const snapshot = (customerId: string) => receiptRowsOf(db, customerId)

describe('POST /api/pos/receipts/:receiptId/void', () => {
  it('voids a receipt: points back, coupons usable, stats recomputed, follow-up cancelled', async () => {
    const c = await makeCustomer(db, { points: 100 })
    const coupon = await makeCoupon(db, c.id)
    const earlier = await scanReceipt(c.card, receipt({ total: 2_000 }))
    const r = receipt({ pointsUsed: 50, couponsUsed: [coupon] })
    const purchase = await scanReceipt(c.card, r)
    // 100 + 20 (earlier) - 50 + 80
    expect(purchase.points).toBe(150)

    const res = await voidReceipt(r.id)
    expect(res.status).toBe(200)
    const body = (await res.json()) as VoidAnswer
    expect(body).toEqual({
      purchase: {
        id: purchase.id,
        receiptId: r.id,
        voidedAt: expect.any(String),
        pointsReversed: { earned: 80, used: 50, unrecovered: 0 },
        couponsRestored: [coupon],
      },
      customer: { id: c.id, points: null, tier: 'regular' },
    })

    const after = await snapshot(c.id)
    const voided = after.purchases.find((p) => p.id === purchase.id)
    expect(voided?.voided_at?.toISOString()).toBe(body.purchase.voidedAt)
    expect(after.purchases.find((p) => p.id === earlier.id)?.voided_at).toBeNull()
    expect(
      after.ledger
        .filter((l) => l.purchase_id === purchase.id)
        .map((l) => [l.reason, l.delta])
        .sort(),
    ).toEqual([
      ['earn', 80],
      ['redeem', -50],
      ['void', -80],
      ['void', 50],
    ])
    expect(after.customer).toMatchObject({
      points: 120,
      purchase_count: 1,
      total_spent: '2000',
      spend_12m: '2000',
      tier: 'regular',
    })
    expect(after.coupons).toEqual([
      expect.objectContaining({ code: coupon, used_at: null, used_purchase_id: null }),
    ])
    const followUps = Object.fromEntries(after.deliveries.map((d) => [d.dedupe_key, d]))
    expect(followUps[`post-purchase:${purchase.id}`]).toMatchObject({
      status: 'cancelled',
      skip_reason: 'receipt voided',
    })
    expect(followUps[`post-purchase:${earlier.id}`]).toMatchObject({ status: 'pending' })

    // The restored coupon works again; the summary lists it.
    const scanned = (await (await post('/scans', { barcode: c.card })).json()) as ScanResponse
    expect(scanned.customer.coupons.map((x) => x.code)).toEqual([coupon])
  })

  it("never answers the member's balance: a receipt recorded through a coupon scan shows none", async () => {
    // Whoever holds a coupon may not be its owner: the scan answered no balance, and a void (which
    // gives the coupon back, to be scanned and voided again) must not answer it either.
    const c = await makeCustomer(db, { points: 4_321 })
    const coupon = await makeCoupon(db, c.id)
    const r = receipt({ total: 1_000 })
    const scanned = await post('/scans', { barcode: coupon, receipt: r })
    expect(scanned.status).toBe(200)
    expect(((await scanned.json()) as ScanResponse).purchase?.points).toBeNull()

    for (const attempt of ['first', 'again']) {
      const res = await voidReceipt(r.id)
      expect(res.status, attempt).toBe(200)
      const text = await res.text()
      expect(JSON.parse(text), attempt).toEqual({
        purchase: expect.objectContaining({
          receiptId: r.id,
          pointsReversed: { earned: 10, used: 0, unrecovered: 0 },
          couponsRestored: [coupon],
        }),
        customer: { id: c.id, points: null, tier: 'regular' },
      })
      expect(text, attempt).not.toContain('4321')
    }
  })

  it('voiding twice answers the same and changes nothing', async () => {
    const c = await makeCustomer(db)
    const coupon = await makeCoupon(db, c.id)
    const r = receipt({ couponsUsed: [coupon] })
    await scanReceipt(c.card, r)
    const first = await voidReceipt(r.id)
    expect(first.status).toBe(200)
    const firstBody = await first.json()
    const before = await snapshot(c.id)

    const second = await voidReceipt(r.id)
    expect(second.status).toBe(200)
    expect(await second.json()).toEqual(firstBody)
    expect(await snapshot(c.id)).toEqual(before)
  })

  it('takes back only the points left when the earned ones were already spent', async () => {
    const c = await makeCustomer(db)
    const r = receipt({ total: 10_000 }) // earns 100
    await scanReceipt(c.card, r)
    await scanReceipt(c.card, receipt({ total: 1_000, pointsUsed: 70 })) // 100 - 70 + 10 = 40
    const res = await voidReceipt(r.id)
    expect(res.status).toBe(200)
    const body = (await res.json()) as VoidAnswer
    expect(body.purchase.pointsReversed).toEqual({ earned: 40, used: 0, unrecovered: 60 })
    expect(body.customer).toEqual({ id: c.id, points: null, tier: 'regular' })
    const after = await snapshot(c.id)
    expect(after.customer).toMatchObject({ points: 0, purchase_count: 1, total_spent: '1000' })
    expect(after.ledger.filter((l) => l.reason === 'void').map((l) => l.delta)).toEqual([-40])
    expect(after.ledger.reduce((sum, l) => sum + l.delta, 0)).toBe(0)
  })

  it('answers 404 for a receipt unknown at this store and changes nothing', async () => {
    const c = await makeCustomer(db, { points: 10 })
    const r = receipt()
    await scanReceipt(c.card, r)
    const before = await snapshot(c.id)

    const unknown = await voidReceipt(`R-${randomUUID()}`)
    expect(unknown.status).toBe(404)
    expect((await errorOf(unknown)).message).toContain('check the receipt number')
    const otherStore = await makeStoreKey(db)
    expect((await voidReceipt(r.id, otherStore.key)).status).toBe(404)
    expect(await snapshot(c.id)).toEqual(before)
  })

  it('voids a receipt whose id holds "%" or "/": the path is decoded once', async () => {
    const c = await makeCustomer(db, { points: 10 })
    for (const id of [`R-${randomUUID()}-100%`, `R/${randomUUID()}%2F1`]) {
      const r = receipt({ id })
      const purchase = await scanReceipt(c.card, r)
      const res = await voidReceipt(id)
      expect(res.status, id).toBe(200)
      expect(((await res.json()) as VoidAnswer).purchase, id).toMatchObject({
        id: purchase.id,
        receiptId: id,
      })
    }
  })

  it('answers 400 naming receiptId, 401 without a key, 403 without scope pos', async () => {
    const c = await makeCustomer(db)
    const r = receipt()
    await scanReceipt(c.card, r)
    const before = await snapshot(c.id)

    const tooLong = await voidReceipt('R'.repeat(101))
    expect(tooLong.status).toBe(400)
    const error = await errorOf(tooLong)
    expect(error.code).toBe('BAD_REQUEST')
    expect(error.message).toContain('receiptId')
    const blank = await voidReceipt('   ')
    expect(blank.status).toBe(400)
    expect((await errorOf(blank)).message).toContain('receiptId')

    // A path piece that is not percent-encoded UTF-8 names no receipt: 400, not 404 "no receipt".
    for (const bad of ['%E0%A4%A', '%80', 'R%', `${encodeURIComponent(r.id)}%FF`]) {
      const res = await post(`/receipts/${bad}/void`, {})
      expect(res.status, bad).toBe(400)
      const problem = await errorOf(res)
      expect(problem.code, bad).toBe('BAD_REQUEST')
      expect(problem.details, bad).toEqual([
        { field: 'receiptId', message: 'not valid percent-encoded UTF-8' },
      ])
    }

    expect((await voidReceipt(r.id, null)).status).toBe(401)
    const importer = await makeStoreKey(db, ['import'])
    const forbidden = await voidReceipt(r.id, importer.key)
    expect(forbidden.status).toBe(403)
    expect((await errorOf(forbidden)).code).toBe('FORBIDDEN')
    expect(await snapshot(c.id)).toEqual(before)
  })
})
