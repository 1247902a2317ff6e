import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import {
  legacyCardNumber,
  makeCoupon,
  makeCustomer,
  makeStoreKey,
  pointsOf,
  postPos,
  receipt,
} from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { receiptRowsOf } from './receipt-rows.ts'

// A coupon code names its owner but is no proof of who is at the register: shoppers pass coupons
// on. Scanned as the barcode, it lets the receipt use that coupon and nothing else of the
// owner's (points, other coupons), and the answer shows none of the owner's other coupons, nor
// their name or points balance.

let k: TestKizuna
let db: Database
let key: string
beforeAll(async () => {
  k = await startTestKizuna()
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
})
afterAll(async () => {
  await k?.stopAll()
})

const post = (body: unknown) => postPos(k.baseUrl, '/scans', body, key)

/** An owner with points, a member card, and two coupons: one passed on, one kept. */
async function owner() {
  const c = await makeCustomer(db, { points: 500, displayName: 'Sato Hanako' })
  const passedOn = await makeCoupon(db, c.id)
  const kept = await makeCoupon(db, c.id)
  return { ...c, passedOn, kept }
}

describe('POST /api/pos/scans with a coupon as the barcode', () => {
  it("answers the owner's summary with only the scanned coupon: no other coupon's code, no name, no points", async () => {
    const c = await owner()
    const res = await post({ barcode: c.passedOn.toLowerCase() })
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(JSON.parse(text)).toEqual({
      customer: {
        id: c.id,
        displayName: null,
        tier: 'regular',
        points: null,
        coupons: [
          {
            code: c.passedOn,
            title: 'Welcome 500 yen',
            discountYen: 500,
            expiresAt: expect.any(String),
          },
        ],
      },
    })
    expect(text).not.toContain(c.kept)
    expect(text).not.toContain(c.card)
    expect(text).not.toContain('Sato')
    // The member card and a legacy card still show every usable coupon.
    const byCard = (await (await post({ barcode: c.card })).json()) as ScanResponse
    expect(byCard.customer.coupons.map((x) => x.code).sort()).toEqual([c.passedOn, c.kept].sort())
  })

  it("refuses a receipt using the owner's points or another coupon with 403 naming the field, and writes nothing", async () => {
    const c = await owner()
    const before = await receiptRowsOf(db, c.id)
    const cases: [Record<string, unknown>, string[]][] = [
      [{ pointsUsed: 100 }, ['receipt.pointsUsed']],
      [{ couponsUsed: [c.kept] }, ['receipt.couponsUsed.0']],
      [{ couponsUsed: [c.passedOn, c.kept] }, ['receipt.couponsUsed.1']],
      [{ pointsUsed: 1, couponsUsed: [c.kept] }, ['receipt.pointsUsed', 'receipt.couponsUsed.0']],
    ]
    for (const [over, fields] of cases) {
      const label = JSON.stringify(over)
      const res = await post({ barcode: c.passedOn, receipt: receipt(over) })
      expect(res.status, label).toBe(403)
      const error = await errorOf(res)
      expect(error.code, label).toBe('FORBIDDEN')
      expect(error.message, label).toContain('scan the member card to use points or other coupons')
      expect(
        (error.details as { field: string }[]).map((d) => d.field),
        label,
      ).toEqual(fields)
    }
    expect(await receiptRowsOf(db, c.id)).toEqual(before)
  })

  it('records a receipt using the scanned coupon alone, and answers without the other coupons', async () => {
    const c = await owner()
    for (const over of [{}, { couponsUsed: [c.passedOn] }]) {
      const coupon = await makeCoupon(db, c.id)
      const r = receipt(over.couponsUsed ? { couponsUsed: [coupon] } : {})
      const res = await post({ barcode: coupon, receipt: r })
      expect(res.status).toBe(200)
      const text = await res.text()
      const body = JSON.parse(text) as ScanResponse
      // The balance after the sale (580) is the owner's too: not said to the coupon's holder.
      expect(body.purchase).toMatchObject({ pointsUsed: 0, couponsUsed: [coupon], points: null })
      expect(body.customer).toMatchObject({ displayName: null, points: null })
      expect(await pointsOf(db, c.id)).toBe(580)
      // The scanned coupon is used now: no coupon is left to show.
      expect(body.customer.coupons).toEqual([])
      expect(text).not.toContain('Sato')
      expect(text).not.toContain(c.kept)
      expect(text).not.toContain(c.passedOn)
      // Sent again (a register retrying), the replay shows no more.
      const again = await post({ barcode: coupon, receipt: r })
      expect(again.status).toBe(200)
      expect(await again.json()).toEqual({
        ...body,
        purchase: { ...body.purchase, replayed: true },
      })
      await db.updateTable('customer').set({ points: 500 }).where('id', '=', c.id).execute()
    }
  })

  it('refuses a coupon scan sending again a receipt the member card recorded with points, and shows no other coupon', async () => {
    const c = await owner()
    const r = receipt({ pointsUsed: 100, couponsUsed: [c.passedOn] })
    expect((await post({ barcode: c.card, receipt: r })).status).toBe(200)
    const before = await receiptRowsOf(db, c.id)
    const withPoints = await post({ barcode: c.passedOn, receipt: r })
    expect(withPoints.status).toBe(403)
    expect((await errorOf(withPoints)).details).toEqual([
      { field: 'receipt.pointsUsed', message: expect.stringContaining('scan the member card') },
    ])
    // Without points it is the same sale sent again: the replay, as a coupon scan shows it.
    const res = await post({
      barcode: c.passedOn,
      receipt: { ...r, pointsUsed: 0, couponsUsed: [] },
    })
    expect(res.status).toBe(200)
    const text = await res.text()
    const replay = JSON.parse(text) as ScanResponse
    expect(replay.purchase).toMatchObject({ replayed: true, points: null })
    expect(replay.customer).toMatchObject({ displayName: null, points: null, coupons: [] })
    expect(text).not.toContain('Sato')
    expect(text).not.toContain(c.kept)
    expect(await receiptRowsOf(db, c.id)).toEqual(before)
  })

  it("still lets a member card or legacy card use the owner's points and coupons", async () => {
    const legacy = legacyCardNumber()
    const c = await makeCustomer(db, { points: 500, legacyCard: legacy })
    const [a, b] = [await makeCoupon(db, c.id), await makeCoupon(db, c.id)]
    for (const [barcode, coupon] of [
      [c.card, a],
      [legacy, b],
    ] as const) {
      const res = await post({
        barcode,
        receipt: receipt({ pointsUsed: 100, couponsUsed: [coupon] }),
      })
      expect(res.status).toBe(200)
      expect(((await res.json()) as ScanResponse).purchase).toMatchObject({
        pointsUsed: 100,
        couponsUsed: [coupon],
      })
    }
  })
})
