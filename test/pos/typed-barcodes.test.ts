import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import {
  fullWidth,
  legacyCardNumber,
  makeCoupon,
  makeCustomer,
  makeStoreKey,
  misread,
  postPos,
  printedCardNumber,
  receipt,
  spacedLegacyCard,
} from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { receiptRowsOf } from './receipt-rows.ts'

// A keyboard-wedge scanner typing while the IME is in full-width mode sends "２９１２…", and
// staff typing a number by hand may do the same, with the spaces or hyphens printed under the
// bars: each is the one card the register would read from ASCII digits.

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

async function scannedId(body: unknown): Promise<string> {
  const res = await post(body)
  expect(res.status, JSON.stringify(body)).toBe(200)
  return ((await res.json()) as ScanResponse).customer.id
}

const identitiesOf = (customerId: string) =>
  db
    .selectFrom('identity')
    .select(['kind', 'value'])
    .where('customer_id', '=', customerId)
    .orderBy('kind')
    .execute()

describe('POST /api/pos/scans with a number typed in full width, or with spaces', () => {
  it('finds the member card, legacy card and coupon however the number was typed', async () => {
    const legacy = legacyCardNumber()
    const c = await makeCustomer(db, { legacyCard: legacy })
    const coupon = await makeCoupon(db, c.id)
    const typed = [
      fullWidth(c.card),
      `\u3000${fullWidth(c.card)}\u3000`,
      printedCardNumber(c.card),
      fullWidth(printedCardNumber(c.card)),
      `${c.card.slice(0, 4)}-${c.card.slice(4, 8)}-${c.card.slice(8)}`,
      fullWidth(`${c.card.slice(0, 4)}-${c.card.slice(4)}`),
      fullWidth(legacy),
      ` ${fullWidth(legacy)}\u3000`,
      fullWidth(coupon),
    ]
    for (const barcode of typed) expect(await scannedId({ barcode }), barcode).toBe(c.id)
  })

  it('keeps what is inside a legacy card number: its hyphens and spaces are part of it', async () => {
    const legacy = `AB-${legacyCardNumber()} 7`
    const c = await makeCustomer(db, { legacyCard: legacy })
    expect(await scannedId({ barcode: fullWidth(legacy) })).toBe(c.id)
    const squeezed = await post({ barcode: legacy.replaceAll(/[- ]/g, '') })
    expect(squeezed.status).toBe(404)
  })

  it('records a receipt for a full-width card with a full-width coupon, once', async () => {
    const c = await makeCustomer(db, { points: 100 })
    const coupon = await makeCoupon(db, c.id)
    const r = receipt({ pointsUsed: 100, couponsUsed: [fullWidth(coupon)] })
    const first = await post({ barcode: fullWidth(c.card), receipt: r })
    expect(first.status).toBe(200)
    const body = (await first.json()) as ScanResponse
    expect(body.customer.id).toBe(c.id)
    expect(body.purchase).toMatchObject({ pointsUsed: 100, replayed: false })
    const used = await db
      .selectFrom('coupon')
      .select(['used_purchase_id'])
      .where('code', '=', coupon)
      .executeTakeFirstOrThrow()
    expect(used.used_purchase_id).toBe(body.purchase?.id)

    // The register retries with the number as printed: the same sale, not a second one.
    const again = await post({ barcode: printedCardNumber(c.card), receipt: r })
    expect(again.status).toBe(200)
    expect(((await again.json()) as ScanResponse).purchase).toMatchObject({
      id: body.purchase?.id,
      replayed: true,
    })
    // A coupon scanned as the barcode, in full width, pays for its own owner's sale.
    const other = await makeCustomer(db)
    const otherCoupon = await makeCoupon(db, other.id)
    const byCoupon = await post({ barcode: fullWidth(otherCoupon), receipt: receipt() })
    expect(byCoupon.status).toBe(200)
    expect(((await byCoupon.json()) as ScanResponse).customer.id).toBe(other.id)
    const purchases = await db
      .selectFrom('purchase')
      .select('customer_id')
      .where('customer_id', 'in', [c.id, other.id])
      .execute()
    expect(purchases.map((p) => p.customer_id).sort()).toEqual([c.id, other.id].sort())
  })

  it('finds a coupon typed in lower case: looked up, scanned with a receipt and its retry, or listed', async () => {
    const c = await makeCustomer(db)
    const [scanned, listed] = [await makeCoupon(db, c.id), await makeCoupon(db, c.id)]
    expect(await scannedId({ barcode: scanned.toLowerCase() })).toBe(c.id)
    expect(await scannedId({ barcode: fullWidth(scanned.toLowerCase()) })).toBe(c.id)
    // Scanned with a receipt (listed too, as itself) and retried: the same coupon, used once.
    const r = receipt({ couponsUsed: [scanned.toLowerCase()] })
    const first = await post({ barcode: scanned.toLowerCase(), receipt: r })
    expect(first.status).toBe(200)
    const body = (await first.json()) as ScanResponse
    expect(body.purchase?.couponsUsed).toEqual([scanned])
    const again = await post({ barcode: scanned.toLowerCase(), receipt: r })
    expect(again.status).toBe(200)
    expect(((await again.json()) as ScanResponse).purchase).toMatchObject({ replayed: true })
    // Listed in lower case with the member card.
    const withCard = receipt({ couponsUsed: [listed.toLowerCase()] })
    const second = await post({ barcode: c.card, receipt: withCard })
    expect(second.status).toBe(200)
    const secondBody = (await second.json()) as ScanResponse
    expect(secondBody.purchase?.couponsUsed).toEqual([listed])
    const { coupons } = await receiptRowsOf(db, c.id)
    const usedBy = Object.fromEntries(coupons.map((x) => [x.code, x.used_purchase_id]))
    expect(usedBy).toEqual({ [scanned]: body.purchase?.id, [listed]: secondBody.purchase?.id })
  })

  it('reads a receipt id typed in full width as the same receipt: a retry, not a second sale', async () => {
    const c = await makeCustomer(db)
    const r = receipt({ id: `r-${randomUUID()}` })
    const first = await post({ barcode: c.card, receipt: r })
    expect(first.status).toBe(200)
    const id = ((await first.json()) as ScanResponse).purchase?.id
    // Staff retyping it with the IME on: one letter, or all of it, in full width.
    for (const typed of [r.id.replace('r', 'ｒ'), fullWidth(r.id)]) {
      const again = await post({ barcode: c.card, receipt: { ...r, id: typed } })
      expect(again.status).toBe(200)
      expect(((await again.json()) as ScanResponse).purchase).toMatchObject({ id, replayed: true })
    }
    // Recorded in full width, it is stored as read, and voided by the number in ASCII.
    const wide = receipt({ id: fullWidth(`W-${randomUUID()}`) })
    expect((await post({ barcode: c.card, receipt: wide })).status).toBe(200)
    const voided = await postPos(
      k.baseUrl,
      `/receipts/${encodeURIComponent(wide.id.normalize('NFKC'))}/void`,
      {},
      key,
    )
    expect(voided.status).toBe(200)
    const { purchases } = await receiptRowsOf(db, c.id)
    expect(purchases.map((p) => p.external_id).sort()).toEqual([wide.id.normalize('NFKC'), r.id])
  })

  it('answers 422 "misread barcode, scan again" for a wrong check digit in full width', async () => {
    const c = await makeCustomer(db)
    for (const barcode of [fullWidth(misread(c.card)), printedCardNumber(misread(c.card))]) {
      for (const body of [{ barcode }, { barcode, receipt: receipt() }]) {
        const res = await post(body)
        expect(res.status, barcode).toBe(422)
        expect(await errorOf(res)).toMatchObject({
          message: 'misread barcode, scan again',
          details: [{ field: 'barcode', message: 'misread barcode, scan again' }],
        })
      }
    }
    const purchases = await db
      .selectFrom('purchase')
      .select('id')
      .where('customer_id', '=', c.id)
      .execute()
    expect(purchases).toEqual([])
  })

  it('links a legacy card typed in full width as the number a scanner reads', async () => {
    const c = await makeCustomer(db)
    const legacy = legacyCardNumber()
    expect(await scannedId({ barcode: fullWidth(c.card), linkBarcode: fullWidth(legacy) })).toBe(
      c.id,
    )
    expect(await identitiesOf(c.id)).toEqual([
      { kind: 'legacy_card', value: legacy },
      { kind: 'member_card', value: c.card },
    ])
    expect(await scannedId({ barcode: legacy })).toBe(c.id)

    // A member card in full width, or as printed, is still a member card, never a legacy one.
    const other = await makeCustomer(db)
    for (const linkBarcode of [fullWidth(other.card), printedCardNumber(other.card)]) {
      const res = await post({ barcode: c.card, linkBarcode })
      expect(res.status, linkBarcode).toBe(400)
      expect(await errorOf(res)).toMatchObject({
        details: [{ field: 'linkBarcode', message: expect.stringContaining('member card') }],
      })
    }
    const misreadLink = await post({ barcode: c.card, linkBarcode: fullWidth(misread(other.card)) })
    expect(misreadLink.status).toBe(422)
    expect(await identitiesOf(c.id)).toHaveLength(2)
  })
})

describe('POST /api/pos/scans with a legacy card whose spaces hide 13 digits with our prefix', () => {
  it('finds its holder by the number as typed, with or without a receipt', async () => {
    for (const valid of [false, true]) {
      const legacy = spacedLegacyCard(valid)
      const c = await makeCustomer(db, { legacyCard: legacy })
      for (const barcode of [legacy, fullWidth(legacy)]) {
        expect(await scannedId({ barcode }), `${barcode} (${valid})`).toBe(c.id)
      }
      const res = await post({ barcode: legacy, receipt: receipt() })
      expect(res.status, legacy).toBe(200)
      const body = (await res.json()) as ScanResponse
      expect(body.customer.id).toBe(c.id)
      const purchase = await db
        .selectFrom('purchase')
        .select('customer_id')
        .where('id', '=', body.purchase?.id ?? '')
        .executeTakeFirstOrThrow()
      expect(purchase.customer_id).toBe(c.id)
    }
  })

  it('answers 410 for an erased holder, and still 422 or 404 for a number no one has', async () => {
    for (const valid of [false, true]) {
      const legacy = spacedLegacyCard(valid)
      const c = await makeCustomer(db, { legacyCard: legacy })
      await eraseCustomer(db, c.id)
      for (const body of [{ barcode: legacy }, { barcode: legacy, receipt: receipt() }]) {
        expect((await post(body)).status, `${legacy} (${valid})`).toBe(410)
      }
      const unknown = spacedLegacyCard(valid)
      for (const body of [{ barcode: unknown }, { barcode: unknown, receipt: receipt() }]) {
        expect((await post(body)).status, unknown).toBe(valid ? 404 : 422)
      }
    }
  })

  it('still finds the member card with those digits first', async () => {
    const member = await makeCustomer(db)
    const printed = `${member.card.slice(0, 2)} ${member.card.slice(2, 6)} ${member.card.slice(6, 10)} ${member.card.slice(10)}`
    await makeCustomer(db, { legacyCard: printed })
    expect(await scannedId({ barcode: printed })).toBe(member.id)
  })
})
