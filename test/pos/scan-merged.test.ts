import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import type { Database } from '../../src/platform/db.ts'
import {
  fullWidth,
  legacyCardNumber,
  makeCoupon,
  makeCustomer,
  makeStoreKey,
  memberCardNumber,
  misread,
  postPos,
  printedCardNumber,
} from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'

// A bare scan of a card or coupon still held by a merged customer (merged before merges moved
// cards and re-pointed earlier merges, or left so by an import) answers with the customer the
// merges lead to, or 410 when that one was erased.

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

/** "29 0012 3456 789": an old plastic card's number hiding 13 digits with our prefix. */
function spacedLegacyCard(validCheckDigit: boolean): string {
  const digits = validCheckDigit ? memberCardNumber() : misread(memberCardNumber())
  return `${digits.slice(0, 2)} ${digits.slice(2, 6)} ${digits.slice(6, 10)} ${digits.slice(10)}`
}

/**
 * A holder of a member card, three legacy cards and a coupon, merged `hops` times on: each
 * customer into the next, the last one the survivor (120 points, a coupon of its own).
 */
async function mergedChain(hops: number) {
  const holder = await makeCustomer(db, { points: 0 })
  const legacy = [legacyCardNumber(), spacedLegacyCard(true), spacedLegacyCard(false)]
  await db
    .insertInto('identity')
    .values(legacy.map((value) => ({ customer_id: holder.id, kind: 'legacy_card', value })))
    .execute()
  const coupon = await makeCoupon(db, holder.id)
  const chain = [holder.id]
  for (let i = 0; i < hops; i++) {
    const next = await makeCustomer(db, { points: 120, displayName: `Survivor ${i}` })
    await db
      .updateTable('customer')
      .set({ merged_into_id: next.id })
      .where('id', '=', chain.at(-1) ?? '')
      .execute()
    chain.push(next.id)
  }
  const survivorId = chain.at(-1) ?? ''
  const survivorCoupon = await makeCoupon(db, survivorId)
  const barcodes = {
    memberCard: holder.card,
    printedMemberCard: printedCardNumber(holder.card),
    legacyCard: legacy[0] ?? '',
    fullWidthLegacyCard: fullWidth(legacy[0] ?? ''),
    spacedLegacyCard: legacy[1] ?? '',
    spacedMisreadLegacyCard: legacy[2] ?? '',
    coupon,
  }
  return { chain, survivorId, survivorCoupon, barcodes }
}

describe('POST /api/pos/scans without a receipt, for a card held by a merged customer', () => {
  it("answers the survivor's summary after 1, 2 and 9 merges, for each kind of barcode", async () => {
    for (const hops of [1, 2, 9]) {
      const { survivorId, survivorCoupon, barcodes } = await mergedChain(hops)
      for (const [kind, barcode] of Object.entries(barcodes)) {
        const res = await post({ barcode })
        expect(res.status, `${kind} after ${hops}`).toBe(200)
        expect(await res.json(), `${kind} after ${hops}`).toEqual({
          customer: {
            id: survivorId,
            displayName: `Survivor ${hops - 1}`,
            tier: 'regular',
            points: 120,
            coupons: [expect.objectContaining({ code: survivorCoupon })],
          },
        })
      }
    }
  })

  it('answers 410 when the customer the merges lead to was erased since, for each kind of barcode', async () => {
    for (const hops of [1, 2]) {
      const { chain, barcodes } = await mergedChain(hops)
      await eraseCustomer(db, chain[0] ?? '') // follows the merges: the survivor is erased
      for (const [kind, barcode] of Object.entries(barcodes)) {
        const res = await post({ barcode })
        expect(res.status, `${kind} after ${hops}`).toBe(410)
        expect((await errorOf(res)).message).toContain('erased on request')
      }
    }
  })

  it('answers 410 for a chain through an erased customer, though it was merged on', async () => {
    const { chain, barcodes } = await mergedChain(2)
    await db
      .updateTable('customer')
      .set({ erased_at: new Date() })
      .where('id', '=', chain[1] ?? '')
      .execute()
    for (const [kind, barcode] of Object.entries(barcodes)) {
      expect((await post({ barcode })).status, kind).toBe(410)
    }
  })

  it('answers 404 for a chain of more than 9 merges (one is never that long)', async () => {
    const { barcodes } = await mergedChain(10)
    for (const [kind, barcode] of Object.entries(barcodes)) {
      expect((await post({ barcode })).status, kind).toBe(404)
    }
  })
})
