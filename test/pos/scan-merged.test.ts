import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { MergeChainTooLong } from '../../src/customers/surviving-customer.repo.ts'
import type { Database, DB } from '../../src/platform/db.ts'
import { memberSummary } from '../../src/pos/member-summary.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import { scan } from '../../src/pos/pos.service.ts'
import {
  fullWidth,
  legacyCardNumber,
  makeCoupon,
  makeCustomer,
  makeStoreKey,
  postPos,
  printedCardNumber,
  receipt,
  spacedLegacyCard,
} from '../purchases/fixtures.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'

// A bare scan of a card or coupon still held by a merged customer (merged before merges moved
// cards and re-pointed earlier merges, or left so by an import) answers with the customer the
// merges lead to, or 410 when that one was erased.

let k: TestKizuna
let db: Database
let key: string
let store: { id: string; code: string }
beforeAll(async () => {
  k = await startTestKizuna()
  db = k.deps.db
  const made = await makeStoreKey(db)
  key = made.key
  store = { id: made.storeId, code: made.storeCode }
})
afterAll(async () => {
  await k?.stopAll()
})

const post = (body: unknown) => postPos(k.baseUrl, '/scans', body, key)

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
  it("answers the survivor's summary after 1, 2 and 10 merges (MAX_MERGE_HOPS), for each kind of barcode", async () => {
    for (const hops of [1, 2, 10]) {
      const { survivorId, survivorCoupon, barcodes } = await mergedChain(hops)
      for (const [kind, barcode] of Object.entries(barcodes)) {
        const res = await post({ barcode })
        expect(res.status, `${kind} after ${hops}`).toBe(200)
        // A coupon scan shows that coupon alone (the survivor's own is not shown for it), and
        // neither name nor points.
        const byCoupon = kind === 'coupon'
        const coupons = byCoupon ? [] : [expect.objectContaining({ code: survivorCoupon })]
        expect(await res.json(), `${kind} after ${hops}`).toEqual({
          customer: {
            id: survivorId,
            displayName: byCoupon ? null : `Survivor ${hops - 1}`,
            tier: 'regular',
            points: byCoupon ? null : 120,
            coupons,
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

  it('refuses a chain of more than 10 merges as every walk does, with or without a receipt, and writes nothing', async () => {
    // Merges re-point earlier ones at the survivor, so no merge writes such a chain: its end is
    // not known, so the scan is an internal error (logged), never 404 "no card has this number".
    const { chain, barcodes } = await mergedChain(11)
    for (const [kind, barcode] of Object.entries(barcodes)) {
      expect((await post({ barcode })).status, kind).toBe(500)
      expect((await post({ barcode, receipt: receipt() })).status, `${kind} with a receipt`).toBe(
        500,
      )
    }
    const purchases = await db
      .selectFrom('purchase')
      .select('id')
      .where('customer_id', 'in', chain)
      .execute()
    expect(purchases).toEqual([])
  })

  it('reads no summary by customer id past 10 merges either (a link, a receipt replayed), never a merged-away row', async () => {
    const { chain } = await mergedChain(11)
    await expect(memberSummary(db, chain[0] ?? '')).rejects.toBeInstanceOf(MergeChainTooLong)
  })
})

describe('a scan without a receipt', () => {
  it('reads the member, through two merges, in one statement, for each kind of barcode', async () => {
    const { survivorId, barcodes } = await mergedChain(2)
    const statements: string[] = []
    const counting = new Kysely<DB>({
      dialect: new PostgresDialect({
        pool: new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1 }),
      }),
      log: (event) => {
        statements.push(event.query.sql)
      },
    })
    try {
      for (const [kind, barcode] of Object.entries(barcodes)) {
        statements.length = 0
        const answer: ScanResponse = await scan({ ...k.deps, db: counting }, store, { barcode })
        expect(answer.customer.id, kind).toBe(survivorId)
        expect(statements, kind).toHaveLength(1)
      }
    } finally {
      await counting.destroy()
    }
  })
})
