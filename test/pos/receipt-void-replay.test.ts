import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import type { VoidAnswer } from '../../src/pos/pos.service.ts'
import {
  legacyCardNumber,
  makeCoupon,
  makeCustomer,
  makeStoreKey,
  postPos,
  receipt,
} from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { receiptRowsOf } from './receipt-rows.ts'

// A register that went offline replays its receipts when it is back. One voided meanwhile (a
// return at another register, a mistake) must not come back as if the sale stood: the staff
// would tell the shopper about points the void took back.

let k: TestKizuna
let db: Database
let key: string
beforeAll(async () => {
  k = await startTestKizuna({ POST_PURCHASE_DELAY_SECONDS: '3600' })
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
})
afterAll(async () => {
  await k.stopAll()
})

const post = (path: string, body: unknown) => postPos(k.baseUrl, path, body, key)
const voidReceipt = async (receiptId: string) => {
  const res = await post(`/receipts/${encodeURIComponent(receiptId)}/void`, {})
  expect(res.status).toBe(200)
  return (await res.json()) as VoidAnswer
}

/** A member's receipt (points used and a coupon), recorded then voided. */
async function voidedSale() {
  const c = await makeCustomer(db, { points: 100 })
  const coupon = await makeCoupon(db, c.id)
  const r = receipt({ pointsUsed: 30, couponsUsed: [coupon] })
  const recorded = await post('/scans', { barcode: c.card, receipt: r })
  expect(recorded.status).toBe(200)
  const voided = await voidReceipt(r.id)
  return { c, coupon, r, voided }
}

async function expectVoidedConflict(res: Response, receiptId: string, voidedAt: string) {
  expect(res.status).toBe(409)
  const error = await errorOf(res)
  expect(error.code).toBe('CONFLICT')
  expect(error.message).toContain(`receipt ${receiptId} was voided at ${voidedAt}`)
  expect(error.message).toContain('a new sale needs its own receipt id')
  expect(error.details).toEqual([{ field: 'receipt.id', message: `voided at ${voidedAt}` }])
}

describe('a register replaying a voided receipt', () => {
  it('gets 409 naming the receipt and when it was voided, and nothing is written', async () => {
    const { c, coupon, r, voided } = await voidedSale()
    const before = await receiptRowsOf(db, c.id)
    expect(before.customer.points).toBe(100)

    const link = legacyCardNumber()
    const replays = [
      { barcode: c.card, receipt: r }, // as first sent
      { barcode: c.card, receipt: { ...r, pointsUsed: 0, couponsUsed: [] } }, // a bare retry
      // The restored coupon scanned (a coupon scan using points is a 403: scan-coupon-only).
      { barcode: coupon, receipt: { ...r, pointsUsed: 0, couponsUsed: [] } },
      { barcode: c.card, linkBarcode: link, receipt: r }, // with a card to link: not linked
      { barcode: c.card, receipt: { ...r, ...receipt({ total: 5_000 }), id: r.id } }, // another sale
    ]
    for (const body of replays) {
      await expectVoidedConflict(await post('/scans', body), r.id, voided.purchase.voidedAt)
      expect(await receiptRowsOf(db, c.id), JSON.stringify(body)).toEqual(before)
    }
    const rows = await db
      .selectFrom('purchase')
      .select(['id', 'voided_at'])
      .where('external_id', '=', r.id)
      .execute()
    expect(rows).toEqual([{ id: voided.purchase.id, voided_at: expect.any(Date) }])
  })

  it('is never recorded again, however many times it comes or raced with the void', async () => {
    const c = await makeCustomer(db)
    const r = receipt({ total: 10_000 }) // earns 100
    expect((await post('/scans', { barcode: c.card, receipt: r })).status).toBe(200)
    const answers = await Promise.all([
      post(`/receipts/${encodeURIComponent(r.id)}/void`, {}),
      ...Array.from({ length: 4 }, () => post('/scans', { barcode: c.card, receipt: r })),
    ])
    const [voidAnswer, ...replays] = answers
    if (!voidAnswer) throw new Error('no answer to the void')
    expect(voidAnswer.status).toBe(200)
    const { purchase } = (await voidAnswer.json()) as VoidAnswer
    // Each replay came before the void (the first answer) or after it (409): never a new sale.
    for (const replay of replays) {
      if (replay.status === 200) {
        expect(((await replay.json()) as ScanResponse).purchase?.id).toBe(purchase.id)
      } else await expectVoidedConflict(replay, r.id, purchase.voidedAt)
    }
    await expectVoidedConflict(
      await post('/scans', { barcode: c.card, receipt: r }),
      r.id,
      purchase.voidedAt,
    )

    const after = await receiptRowsOf(db, c.id)
    expect(after.purchases.map((p) => [p.id, p.voided_at?.toISOString()])).toEqual([
      [purchase.id, purchase.voidedAt],
    ])
    expect(after.ledger.map((l) => [l.reason, l.delta]).sort()).toEqual([
      ['earn', 100],
      ['void', -100],
    ])
    expect(after.customer).toMatchObject({ points: 0, purchase_count: 0, total_spent: '0' })
    expect(after.deliveries.map((d) => d.status)).toEqual(['cancelled'])
  })

  it('a receipt that was not voided still replays with the first answer', async () => {
    const c = await makeCustomer(db)
    const r = receipt()
    const first = (await (await post('/scans', { barcode: c.card, receipt: r })).json()) as {
      purchase: ScanResponse['purchase']
    }
    const replay = await post('/scans', { barcode: c.card, receipt: r })
    expect(replay.status).toBe(200)
    const body = (await replay.json()) as ScanResponse
    expect(body.purchase).toEqual({ ...first.purchase, replayed: true })
  })
})
