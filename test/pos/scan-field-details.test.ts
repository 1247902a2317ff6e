import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/platform/db.ts'
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

// Every refusal of a scan names, in `details`, the field of the body that caused it, as the
// register sent it (`receipt.pointsUsed`, not the purchase service's own names).

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

describe('POST /api/pos/scans: refusals name the field', () => {
  it('a linkBarcode longer than 64 characters once read (㍿ reads as 4) is a 400 naming it; nothing is bound or recorded', async () => {
    const c = await makeCustomer(db, { points: 100 })
    const before = await receiptRowsOf(db, c.id)
    // 20 characters as sent (the schema's 64 are fine), 80 once read with NFKC.
    const linkBarcode = '㍿'.repeat(20)
    for (const body of [
      { barcode: c.card, linkBarcode },
      { barcode: c.card, linkBarcode, receipt: receipt() },
    ]) {
      const res = await post(body)
      expect(res.status).toBe(400)
      const error = await errorOf(res)
      expect(error).toMatchObject({
        code: 'BAD_REQUEST',
        message: expect.stringMatching(/^linkBarcode: .*64 characters/),
        details: [{ field: 'linkBarcode', message: expect.stringContaining('64 characters') }],
      })
    }
    expect(await receiptRowsOf(db, c.id)).toEqual(before)
  })

  it('more points than the balance is a 409 naming receipt.pointsUsed; nothing is written', async () => {
    const c = await makeCustomer(db, { points: 10 })
    const before = await receiptRowsOf(db, c.id)
    const res = await post({ barcode: c.card, receipt: receipt({ pointsUsed: 11 }) })
    expect(res.status).toBe(409)
    expect(await errorOf(res)).toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining('not enough points'),
      details: [
        {
          field: 'receipt.pointsUsed',
          message: expect.stringContaining('more than the balance of 10'),
        },
      ],
    })
    expect(await receiptRowsOf(db, c.id)).toEqual(before)
  })

  it('a coupon that cannot be used is a 409 naming its place in receipt.couponsUsed; nothing is written', async () => {
    const c = await makeCustomer(db)
    const other = await makeCustomer(db)
    const mine = await makeCoupon(db, c.id)
    const foreign = await makeCoupon(db, other.id)
    const before = await Promise.all([receiptRowsOf(db, c.id), receiptRowsOf(db, other.id)])
    const res = await post({ barcode: c.card, receipt: receipt({ couponsUsed: [mine, foreign] }) })
    expect(res.status).toBe(409)
    expect(await errorOf(res)).toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining(`coupon ${foreign} cannot be used`),
      details: [
        { field: 'receipt.couponsUsed.1', message: expect.stringContaining('cannot be used') },
      ],
    })
    expect(await Promise.all([receiptRowsOf(db, c.id), receiptRowsOf(db, other.id)])).toEqual(
      before,
    )
  })

  it('a used coupon scanned as the barcode is a 409 naming barcode; nothing is written', async () => {
    const c = await makeCustomer(db)
    const coupon = await makeCoupon(db, c.id)
    expect((await post({ barcode: coupon, receipt: receipt() })).status).toBe(200)
    const before = await receiptRowsOf(db, c.id)
    const res = await post({ barcode: coupon, receipt: receipt() })
    expect(res.status).toBe(409)
    expect(await errorOf(res)).toMatchObject({
      details: [{ field: 'barcode', message: expect.stringContaining(`coupon ${coupon}`) }],
    })
    expect(await receiptRowsOf(db, c.id)).toEqual(before)
  })

  it('a barcode or linkBarcode over 64 characters is a 400 saying so, not "required"', async () => {
    const c = await makeCustomer(db)
    const long = 'L'.repeat(65)
    for (const [body, field] of [
      [{ barcode: long }, 'barcode'],
      [{ barcode: c.card, linkBarcode: long }, 'linkBarcode'],
    ] as const) {
      const res = await post(body)
      expect(res.status).toBe(400)
      expect((await errorOf(res)).details).toEqual([
        { field, message: expect.stringContaining('64 characters') },
      ])
    }
    expect((await receiptRowsOf(db, c.id)).identities).toHaveLength(1) // its member card
  })

  it('a body over 256 KB is a 413 naming the whole body', async () => {
    const c = await makeCustomer(db)
    const res = await post({ barcode: c.card, pad: 'x'.repeat(300 * 1024) })
    expect(res.status).toBe(413)
    expect(await errorOf(res)).toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
      message: '(body): is larger than 262144 bytes',
      details: [{ field: '(body)', message: 'is larger than 262144 bytes' }],
    })
  })

  it('a legacy card in linkBarcode still binds (the length is of the number as read)', async () => {
    const c = await makeCustomer(db)
    const legacy = legacyCardNumber()
    expect((await post({ barcode: c.card, linkBarcode: legacy })).status).toBe(200)
  })
})
