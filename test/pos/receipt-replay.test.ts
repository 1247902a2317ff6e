import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import { makeCoupon, makeCustomer, makeStoreKey, postPos, receipt } from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { receiptRowsOf } from './receipt-rows.ts'

// Another member's register reusing a receipt id (a register whose counter was reset, a typo on
// the staff page) is told the id is taken, and nothing of the sale recorded under it: not its
// total, not that it was voided or when.

let k: TestKizuna
let db: Database
let key: string
beforeAll(async () => {
  k = await startTestKizuna()
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
})
afterAll(async () => {
  await k.stopAll()
})

const post = (path: string, body: unknown) => postPos(k.baseUrl, path, body, key)

async function expectOtherMember(res: Response) {
  expect(res.status).toBe(409)
  const text = await res.text()
  expect(JSON.parse(text).error).toMatchObject({
    code: 'CONFLICT',
    details: [{ field: 'receipt.id', message: 'already used for another member' }],
  })
  return text
}

describe("a receipt id reused with another member's card", () => {
  it('tells nothing of the first sale when the total differs too', async () => {
    const a = await makeCustomer(db, { displayName: 'Sato Hanako' })
    const b = await makeCustomer(db)
    const r = receipt({ total: 73_210 })
    expect((await post('/scans', { barcode: a.card, receipt: r })).status).toBe(200)
    const before = await receiptRowsOf(db, b.id)
    const text = await expectOtherMember(
      await post('/scans', {
        barcode: b.card,
        receipt: { ...r, ...receipt({ total: 100 }), id: r.id },
      }),
    )
    expect(text).not.toContain('73210')
    expect(text).not.toContain('73,210')
    expect(await receiptRowsOf(db, b.id)).toEqual(before)
  })

  it('tells nothing of the first sale when it was voided', async () => {
    const a = await makeCustomer(db)
    const b = await makeCustomer(db)
    const r = receipt({ total: 8_000 })
    expect((await post('/scans', { barcode: a.card, receipt: r })).status).toBe(200)
    expect((await post(`/receipts/${encodeURIComponent(r.id)}/void`, {})).status).toBe(200)
    for (const body of [r, { ...r, ...receipt({ total: 100 }), id: r.id }]) {
      const text = await expectOtherMember(await post('/scans', { barcode: b.card, receipt: body }))
      expect(text).not.toContain('voided')
      expect(text).not.toContain('8000')
    }
    // The member of the sale is still told it was voided.
    const own = await post('/scans', { barcode: a.card, receipt: r })
    expect((await errorOf(own)).message).toContain('was voided at')
  })
})

// A receipt id sent again with the same total but other goods is a second sale under a used
// number (a register whose counter was reset): answered as a replay, its lines would be dropped
// while the register thinks it recorded them. A retry of the same sale, however the register
// serialises it again, is still a replay.
describe('a receipt id sent again with the same total', () => {
  const sofa = { sku: 'SOFA-1', name: 'Sofa', quantity: 1, unitPrice: 6_000 }
  const lamps = { sku: 'LAMP-2', name: 'Lamp', quantity: 2, unitPrice: 1_000 }
  const lamp = { ...lamps, quantity: 1 }

  it('is a 409 naming receipt.lines for other skus, quantities or prices, and writes nothing', async () => {
    const c = await makeCustomer(db)
    const r = receipt({ lines: [sofa, lamps] })
    expect((await post('/scans', { barcode: c.card, receipt: r })).status).toBe(200)
    const before = await receiptRowsOf(db, c.id)

    for (const [lines, difference] of [
      [[{ sku: 'ARMCHAIR-3', quantity: 1, unitPrice: 8_000 }], 'SOFA-1 at 6000 yen: 1 recorded, 0'],
      [[sofa, { ...lamps, sku: 'LAMP-9' }], 'LAMP-2 at 1000 yen: 2 recorded, 0 sent'],
      [[{ ...sofa, unitPrice: 7_000 }, lamp], 'SOFA-1 at 6000 yen: 1 recorded, 0 sent'],
      [
        [
          { ...sofa, unitPrice: 4_000 },
          { ...lamps, quantity: 4 },
        ],
        'SOFA-1 at 6000 yen',
      ],
      [[sofa, { ...lamps, quantity: 1, unitPrice: 2_000 }], 'LAMP-2 at 1000 yen: 2 recorded, 0'],
      [[sofa, lamp, lamps], 'LAMP-2 at 1000 yen: 2 recorded, 3 sent'], // one lamp more
    ] as const) {
      const res = await post('/scans', { barcode: c.card, receipt: { ...r, lines } })
      expect(res.status).toBe(409)
      const error = await errorOf(res)
      expect(error).toMatchObject({
        code: 'CONFLICT',
        details: [{ field: 'receipt.lines', message: 'differ from the recorded sale' }],
      })
      expect(error.message).toContain(
        `receipt ${r.id} was already recorded with other lines (${difference}`,
      )
      expect(error.message).toContain('); a different sale needs its own receipt id')
    }
    expect(await receiptRowsOf(db, c.id)).toEqual(before)
  })

  it('is a replay for the same goods: resent as it was, re-serialised, reordered or regrouped', async () => {
    const c = await makeCustomer(db)
    const r = receipt({ lines: [sofa, lamps] })
    const first = await post('/scans', { barcode: c.card, receipt: r })
    expect(first.status).toBe(200)
    const answer = (await first.json()) as ScanResponse
    const replayed = { ...answer, purchase: { ...answer.purchase, replayed: true } }
    const before = await receiptRowsOf(db, c.id)

    // Keys in another order, indented, a sku with a space the schema trims, names left out or
    // spelt otherwise (labels, not what was sold).
    const reserialised = JSON.stringify(
      {
        receipt: {
          total: r.total,
          lines: [
            { unitPrice: 6_000, quantity: 1, sku: ' SOFA-1' },
            { unitPrice: 1_000, quantity: 2, sku: 'LAMP-2', name: 'ランプ' },
          ],
          purchasedAt: r.purchasedAt,
          id: r.id,
        },
        barcode: c.card,
      },
      null,
      2,
    )
    for (const body of [
      { barcode: c.card, receipt: r },
      reserialised,
      { barcode: c.card, receipt: { ...r, lines: [lamps, sofa] } },
      { barcode: c.card, receipt: { ...r, lines: [lamp, sofa, lamp] } },
    ]) {
      const res = await post('/scans', body)
      expect(res.status).toBe(200)
      expect(await res.json()).toEqual(replayed)
    }
    expect(await receiptRowsOf(db, c.id)).toEqual(before)
  })

  it('is a 409 naming receipt.purchasedAt for the same goods sold at another time, and writes nothing', async () => {
    // A register whose receipt counter was reset sends 0001 again on another day, for the same
    // member and item: a second sale, not a retry of the first.
    const c = await makeCustomer(db)
    const yesterday = new Date(Date.now() - 86_400_000)
    const r = receipt({ lines: [sofa, lamps], purchasedAt: yesterday.toISOString() })
    expect((await post('/scans', { barcode: c.card, receipt: r })).status).toBe(200)
    const before = await receiptRowsOf(db, c.id)

    const later = [new Date(), new Date(yesterday.getTime() + 1)]
    for (const at of later) {
      const res = await post('/scans', {
        barcode: c.card,
        receipt: { ...r, purchasedAt: at.toISOString() },
      })
      expect(res.status, at.toISOString()).toBe(409)
      const error = await errorOf(res)
      expect(error).toMatchObject({
        code: 'CONFLICT',
        details: [{ field: 'receipt.purchasedAt', message: 'differs from the recorded sale' }],
      })
      expect(error.message).toContain(
        `receipt ${r.id} was already recorded as purchased at ${yesterday.toISOString()}; ` +
          'a different sale needs its own receipt id',
      )
    }
    expect(await receiptRowsOf(db, c.id)).toEqual(before)

    // The same instant written in another offset is the same sale: a replay.
    const tokyo = new Date(yesterday.getTime() + 9 * 3_600_000).toISOString().replace('Z', '+09:00')
    const same = await post('/scans', { barcode: c.card, receipt: { ...r, purchasedAt: tokyo } })
    expect(same.status).toBe(200)
    expect(((await same.json()) as ScanResponse).purchase?.replayed).toBe(true)
  })

  it("tells another member's register only that the id is taken, not that its lines differ", async () => {
    const a = await makeCustomer(db)
    const b = await makeCustomer(db)
    const r = receipt({ lines: [sofa, lamps] })
    expect((await post('/scans', { barcode: a.card, receipt: r })).status).toBe(200)
    const before = await receiptRowsOf(db, b.id)
    const lines = [{ sku: 'PARASOL-7', quantity: 1, unitPrice: 8_000 }]
    const text = await expectOtherMember(
      await post('/scans', { barcode: b.card, receipt: { ...r, lines } }),
    )
    expect(text).not.toContain('SOFA')
    expect(text).not.toContain('LAMP')
    expect(await receiptRowsOf(db, b.id)).toEqual(before)
  })
})

// A register offline since a sale sends it again once back; meanwhile the member may have been
// merged into another customer (an account link, a card linked at another register). The first
// answer named the merged row, emptied since (no points, no coupons): the replay names the member
// as they are now.
describe('a receipt sent again after its member was merged into another customer', () => {
  it("answers the recorded purchase with the survivor's summary, not the merged-away row", async () => {
    const x = await makeCustomer(db, { points: 300, displayName: 'Sato Hanako' })
    const y = await makeCustomer(db, { points: 50, displayName: 'Sato H.' })
    const xCoupon = await makeCoupon(db, x.id)
    const yCoupon = await makeCoupon(db, y.id)
    const r = receipt({ total: 8_000 })
    const first = await post('/scans', { barcode: x.card, receipt: r })
    expect(first.status).toBe(200)
    const answer = (await first.json()) as ScanResponse
    expect(answer.customer).toMatchObject({ id: x.id, points: 380 })

    await db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: y.id, mergedId: x.id, reason: 'account-link' }),
      )
    const before = await receiptRowsOf(db, y.id)
    const res = await post('/scans', { barcode: x.card, receipt: r })
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(JSON.parse(text)).toEqual({
      customer: {
        id: y.id,
        displayName: 'Sato H.',
        tier: 'regular',
        points: 430,
        coupons: expect.arrayContaining([
          expect.objectContaining({ code: xCoupon }),
          expect.objectContaining({ code: yCoupon }),
        ]),
      },
      // The balance is the survivor's now, as `customer.points` says: not the merged-away row's
      // 380 after the sale, which no longer exists.
      purchase: { ...answer.purchase, points: 430, replayed: true },
    })
    expect(answer.purchase?.points).toBe(380)
    expect(text).not.toContain(x.id)
    expect(await receiptRowsOf(db, y.id)).toEqual(before)
  })
})
