import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import {
  legacyCardNumber,
  legacyCardsOf,
  makeCoupon,
  makeCustomer,
  makeStoreKey,
  misread,
  postPos,
  receipt,
  spacedLegacyCard,
} from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { heldTransaction, lockWaitOn } from '../support/locks.ts'

// A scan's linkBarcode gives a legacy card to the scanned member (merging its holder into them).
// The scan itself: pos.routes.test.ts.

let k: TestKizuna
let db: Database
let key: string
beforeAll(async () => {
  k = await startTestKizuna({ TIER_THRESHOLDS: 'silver:5000,gold:50000' })
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
})
afterAll(async () => {
  await k.stopAll()
})

const post = (body: unknown) => postPos(k.baseUrl, '/scans', body, key)
const purchasesOf = (customerId: string) =>
  db.selectFrom('purchase').selectAll().where('customer_id', '=', customerId).execute()
const customerRow = (id: string) =>
  db.selectFrom('customer').selectAll().where('id', '=', id).executeTakeFirstOrThrow()

describe('POST /api/pos/scans with linkBarcode', () => {
  it('binds an unbound legacy card to the scanned member', async () => {
    const c = await makeCustomer(db)
    const legacy = legacyCardNumber()
    const res = await post({ barcode: c.card, linkBarcode: legacy })
    expect(res.status).toBe(200)
    const rescan = (await (await post({ barcode: legacy })).json()) as ScanResponse
    expect(rescan.customer.id).toBe(c.id)
  })

  it('merges the legacy card holder into the member, with the receipt on the survivor', async () => {
    const legacy = legacyCardNumber()
    const old = await makeCustomer(db, { legacyCard: legacy, points: 200 })
    const c = await makeCustomer(db, { points: 5 })
    const res = await post({ barcode: c.card, linkBarcode: legacy, receipt: receipt() })
    expect(res.status).toBe(200)
    const body = (await res.json()) as ScanResponse
    expect(body.customer.id).toBe(c.id)
    expect(body.customer.points).toBe(285)
    expect(await customerRow(old.id)).toMatchObject({ merged_into_id: c.id })
  })

  it('answers 422 for a misread card in linkBarcode, 400 for a member card, and binds nothing', async () => {
    const c = await makeCustomer(db)
    const other = await makeCustomer(db)
    const misreadLink = await post({ barcode: c.card, linkBarcode: misread(other.card) })
    expect(misreadLink.status).toBe(422)
    expect(await errorOf(misreadLink)).toMatchObject({
      message: expect.stringContaining('misread barcode, scan again'),
      details: [{ field: 'linkBarcode', message: expect.stringContaining('misread') }],
    })
    const memberLink = await post({ barcode: c.card, linkBarcode: other.card })
    expect(memberLink.status).toBe(400)
    expect(await errorOf(memberLink)).toMatchObject({
      details: [{ field: 'linkBarcode', message: expect.stringContaining('member card') }],
    })
    expect(await legacyCardsOf(db, c.id)).toEqual([])
  })

  it('links a number whose spaces hide 13 digits with our prefix, as the customer import does', async () => {
    // An old plastic card's own number ("29 0012 3456 789"): found as typed when no member card
    // has its digits, whatever its check digit says (typed-barcodes.test.ts).
    for (const valid of [true, false]) {
      const c = await makeCustomer(db)
      const legacy = spacedLegacyCard(valid)
      const res = await post({ barcode: c.card, linkBarcode: legacy })
      expect(res.status, `${legacy} (${valid})`).toBe(200)
      expect(await legacyCardsOf(db, c.id)).toEqual([legacy])
      const rescan = (await (await post({ barcode: legacy })).json()) as ScanResponse
      expect(rescan.customer.id).toBe(c.id)
    }
    // The digits of a member card someone holds, spaced, are still that card (400).
    const c = await makeCustomer(db)
    const other = await makeCustomer(db)
    const spaced = `${other.card.slice(0, 2)} ${other.card.slice(2, 6)} ${other.card.slice(6)}`
    const res = await post({ barcode: c.card, linkBarcode: spaced })
    expect(res.status).toBe(400)
    expect(await errorOf(res)).toMatchObject({
      details: [{ field: 'linkBarcode', message: expect.stringContaining('member card') }],
    })
    expect(await legacyCardsOf(db, c.id)).toEqual([])
  })

  it("answers 400 for a coupon code in linkBarcode (its own or another's), and binds nothing", async () => {
    // Bound as a legacy card it would name the card's holder from then on (cards are looked up
    // before coupons): the coupon would no longer be one at any register.
    const c = await makeCustomer(db)
    const other = await makeCustomer(db)
    for (const owner of [c, other]) {
      const code = await makeCoupon(db, owner.id)
      for (const typed of [code, code.toLowerCase()]) {
        const res = await post({ barcode: c.card, linkBarcode: typed, receipt: receipt() })
        expect(res.status).toBe(400)
        expect(await errorOf(res)).toMatchObject({
          details: [{ field: 'linkBarcode', message: expect.stringContaining('coupon') }],
        })
      }
    }
    expect(await legacyCardsOf(db, c.id, other.id)).toEqual([])
    expect(await purchasesOf(c.id)).toHaveLength(0)
  })

  it('links two legacy cards to one member at two registers at once (no deadlock)', async () => {
    // Each round is a race; the deadlock it guards against showed in about half of them.
    for (let round = 0; round < 6; round++) {
      const c = await makeCustomer(db)
      const cards = [legacyCardNumber(), legacyCardNumber()]
      const answers = await Promise.all(
        cards.map((legacy) => post({ barcode: c.card, linkBarcode: legacy, receipt: receipt() })),
      )
      expect(answers.map((r) => r.status)).toEqual([200, 200])
      expect(await legacyCardsOf(db, c.id)).toEqual([...cards].sort())
      expect(await purchasesOf(c.id)).toHaveLength(2)
    }
  })

  it("links crosswise at two registers at once (each member's card with the other's legacy card): no deadlock", async () => {
    for (let round = 0; round < 3; round++) {
      const [legacyA, legacyB] = [legacyCardNumber(), legacyCardNumber()]
      const a = await makeCustomer(db, { legacyCard: legacyA })
      const b = await makeCustomer(db, { legacyCard: legacyB })
      // Both members held, so both scans wait at their first lock and go on together: each then
      // needs the member the other scan is linking.
      const held = await heldTransaction(db, async (trx) => {
        await trx
          .selectFrom('customer')
          .select('id')
          .where('id', 'in', [a.id, b.id])
          .forUpdate()
          .execute()
      })
      const answers = Promise.all([
        post({ barcode: a.card, linkBarcode: legacyB, receipt: receipt() }),
        post({ barcode: b.card, linkBarcode: legacyA, receipt: receipt() }),
      ])
      await lockWaitOn(db, 'customer', 2)
      held.commit()
      await held.committed
      const statuses = await Promise.all(
        (await answers).map(async (r) => (r.status === 200 ? 200 : (await errorOf(r)).message)),
      )
      expect(statuses).toEqual([200, 200])
      const rows = await Promise.all([customerRow(a.id), customerRow(b.id)])
      const survivor = rows.find((r) => r.merged_into_id === null)
      expect(survivor).toBeDefined()
      expect(rows.filter((r) => r.merged_into_id === survivor?.id)).toHaveLength(1)
      const bound = await db
        .selectFrom('identity')
        .select('value')
        .where('customer_id', '=', survivor?.id ?? '')
        .execute()
      expect(bound.map((r) => r.value).sort()).toEqual([a.card, b.card, legacyA, legacyB].sort())
      expect(await purchasesOf(survivor?.id ?? '')).toHaveLength(2)
    }
  })

  it.each([
    ['LINE account', 'line', () => `U${randomUUID().replaceAll('-', '')}`, 'LINE account'],
    [
      'shop account',
      'online_customer',
      () => `shop-${randomUUID()}`,
      'two shop accounts are never merged',
    ],
  ])(
    'refuses with 409 when both have their own %s, and writes nothing',
    async (_, kind, value, why) => {
      const legacy = legacyCardNumber()
      const old = await makeCustomer(db, { legacyCard: legacy })
      const c = await makeCustomer(db)
      await db
        .insertInto('identity')
        .values([
          { customer_id: old.id, kind, value: value() },
          { customer_id: c.id, kind, value: value() },
        ])
        .execute()
      const res = await post({ barcode: c.card, linkBarcode: legacy, receipt: receipt() })
      expect(res.status).toBe(409)
      expect((await errorOf(res)).message).toContain(why)
      expect(await purchasesOf(c.id)).toHaveLength(0)
      expect(await customerRow(old.id)).toMatchObject({ merged_into_id: null })
    },
  )

  it('refuses a coupon code as the card to link to (a coupon can be handed on), and merges no one', async () => {
    const owner = await makeCustomer(db, { displayName: 'Sato Hanako' })
    const coupon = await makeCoupon(db, owner.id)
    const legacy = legacyCardNumber()
    const holder = await makeCustomer(db, { legacyCard: legacy, points: 200 })
    for (const body of [
      { barcode: coupon, linkBarcode: legacy },
      { barcode: coupon, linkBarcode: legacy, receipt: receipt() },
    ]) {
      const res = await post(body)
      expect(res.status).toBe(400)
      expect((await errorOf(res)).message).toContain('barcode: scan the member card')
    }
    expect(await customerRow(holder.id)).toMatchObject({ merged_into_id: null, points: 200 })
    expect(await customerRow(owner.id)).toMatchObject({ points: 0, purchase_count: 0 })
    const rescan = (await (await post({ barcode: legacy })).json()) as ScanResponse
    expect(rescan.customer.id).toBe(holder.id)
    const unused = await db
      .selectFrom('coupon')
      .select('used_at')
      .where('code', '=', coupon)
      .execute()
    expect(unused).toEqual([{ used_at: null }])
  })
})
