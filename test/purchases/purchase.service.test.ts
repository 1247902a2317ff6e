import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { attachPendingPurchases } from '../../src/purchases/pending-purchases.service.ts'
import {
  customerStart,
  type PurchaseInput,
  recordPurchase,
  recordPurchaseFor,
} from '../../src/purchases/purchase.service.ts'
import { refreshStaleSpend } from '../../src/purchases/spend-refresh.service.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { heldTransaction, lockWaitOn } from '../support/locks.ts'
import { makeCoupon, makeCustomer } from './fixtures.ts'

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL, TIER_THRESHOLDS: 'silver:10000,gold:50000' })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
})
afterAll(async () => {
  await db.destroy()
})

const DAY = 86_400_000
function receipt(customerId: string | null, over: Partial<PurchaseInput> = {}): PurchaseInput {
  return {
    channel: 'online',
    source: 'shop',
    externalId: randomUUID(),
    customerId,
    purchasedAt: new Date(),
    lines: [{ sku: 'SOFA-1', name: 'Sofa', quantity: 1, unitPrice: 12_000 }],
    total: 12_000,
    ...over,
  }
}
const record = (input: PurchaseInput) =>
  db.transaction().execute((trx) => recordPurchase(trx, env, input))
const customerRow = (id: string) =>
  db.selectFrom('customer').selectAll().where('id', '=', id).executeTakeFirstOrThrow()

/** A gold customer whose 60,000 purchase, recorded 300 days ago, has since aged past a year. */
async function customerWithAgedPurchase() {
  const c = await makeCustomer(db)
  await record(receipt(c.id, { total: 60_000, purchasedAt: new Date(Date.now() - 300 * DAY) }))
  expect(await customerRow(c.id)).toMatchObject({ tier: 'gold' })
  await db
    .updateTable('purchase')
    .set({ purchased_at: new Date(Date.now() - 366 * DAY) })
    .where('customer_id', '=', c.id)
    .execute()
  return c
}

describe('recordPurchase', () => {
  it('records lines, earns points, updates stats and tier, and is idempotent', async () => {
    const c = await makeCustomer(db)
    const input = receipt(c.id)
    const first = await record(input)
    expect(first).toMatchObject({ created: true, customerId: c.id })
    const again = await record({ ...input, total: 1, lines: [] })
    expect(again).toEqual({ purchaseId: first.purchaseId, created: false, customerId: c.id })

    const row = await customerRow(c.id)
    expect(row).toMatchObject({ points: 120, purchase_count: 1, total_spent: '12000' })
    expect(row).toMatchObject({ spend_12m: '12000', tier: 'silver' })
    expect(row.first_purchase_at).toEqual(input.purchasedAt)
    const lines = await db
      .selectFrom('purchase')
      .select(['line_skus', 'line_names', 'line_quantities', 'line_unit_prices'])
      .where('id', '=', first.purchaseId)
      .executeTakeFirstOrThrow()
    expect(lines).toEqual({
      line_skus: input.lines.map((l) => l.sku),
      line_names: input.lines.map((l) => l.name ?? null),
      line_quantities: input.lines.map((l) => l.quantity),
      line_unit_prices: input.lines.map((l) => l.unitPrice),
    })
    const ledger = await db
      .selectFrom('points_ledger')
      .select(['delta', 'reason'])
      .where('customer_id', '=', c.id)
      .execute()
    expect(ledger).toEqual([{ delta: 120, reason: 'earn' }])
  })

  it('says when a purchase could move a rich-menu segment: a first purchase, a new tier', async () => {
    const c = await makeCustomer(db)
    const scan = (total: number) =>
      recordPurchaseFor(db, env, receipt(null, { channel: 'store', total, lines: [] }), {
        start: customerStart(c.id),
        withResult: true,
      })
    expect(await scan(1_000)).toMatchObject({ created: true, segmentInputsChanged: true })
    expect(await scan(1_000)).toMatchObject({ created: true, segmentInputsChanged: false })
    // 2,000 + 9,000 passes silver's 10,000.
    expect(await scan(9_000)).toMatchObject({ created: true, segmentInputsChanged: true })
    expect(await customerRow(c.id)).toMatchObject({ tier: 'silver', purchase_count: 3 })
    expect(await scan(500)).toMatchObject({ created: true, segmentInputsChanged: false })
  })

  it('gives purchases and ledger rows time-ordered (version 7) ids', async () => {
    const customer = await makeCustomer(db)
    const first = await record(receipt(customer.id))
    const second = await record(receipt(customer.id))
    const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
    expect(first.purchaseId).toMatch(v7)
    expect(second.purchaseId > first.purchaseId).toBe(true)
    const ledger = await db
      .selectFrom('points_ledger')
      .select(['id', 'purchase_id'])
      .where('customer_id', '=', customer.id)
      .orderBy('created_at')
      .execute()
    expect(ledger.map((l) => l.purchase_id)).toEqual([first.purchaseId, second.purchaseId])
    for (const l of ledger) expect(l.id).toMatch(v7)
    // Postgres's uuid_v7() orders by millisecond (the rest is random within one).
    expect(ledger[1]!.id.slice(0, 13) >= ledger[0]!.id.slice(0, 13)).toBe(true)
  })

  it('counts only the last 365 days in spend_12m and refreshes it as purchases age', async () => {
    const c = await makeCustomer(db)
    await record(receipt(c.id, { total: 60_000, purchasedAt: new Date(Date.now() - 400 * DAY) }))
    await record(receipt(c.id, { total: 5_000 }))
    expect(await customerRow(c.id)).toMatchObject({ spend_12m: '5000', tier: 'regular' })

    // A purchase that was inside the window when recorded, and has left it since.
    const d = await customerWithAgedPurchase()
    const changed = await refreshStaleSpend(db, env, { since: new Date(Date.now() - 2 * DAY) })
    expect(changed).toBeGreaterThanOrEqual(1)
    expect(await customerRow(d.id)).toMatchObject({ spend_12m: '0', tier: 'regular' })
  })

  it('adds a purchase to the kept 12-month spend without summing purchases; the refresh ages it', async () => {
    // Until the daily refresh runs, the customer row still counts the aged purchase.
    const c = await customerWithAgedPurchase()
    await record(receipt(c.id, { total: 5_000 }))
    expect(await customerRow(c.id)).toMatchObject({ spend_12m: '65000', tier: 'gold' })
    await refreshStaleSpend(db, env, { since: new Date(Date.now() - 2 * DAY) })
    expect(await customerRow(c.id)).toMatchObject({ spend_12m: '5000', tier: 'regular' })
  })

  it('a refresh running while a scan commits keeps that purchase in spend_12m', async () => {
    const c = await customerWithAgedPurchase()
    // A register's purchase, recorded and not yet committed: it holds the customer's lock.
    const scan = await heldTransaction(db, async (trx) => {
      await recordPurchase(trx, env, receipt(c.id, { total: 5_000 }))
    })
    const refresh = refreshStaleSpend(db, env, { since: new Date(Date.now() - 2 * DAY) })
    // The refresh waits on that lock; then the purchase commits.
    await lockWaitOn(db, 'customer')
    scan.commit()
    await scan.committed
    await refresh
    expect(await customerRow(c.id)).toMatchObject({ spend_12m: '5000', tier: 'regular' })
  })

  it('redeems points, refuses more than the balance and writes nothing then', async () => {
    const c = await makeCustomer(db, { points: 300 })
    await expect(record(receipt(c.id, { pointsUsed: 301 }))).rejects.toMatchObject({
      code: 'CONFLICT',
    })
    expect(await customerRow(c.id)).toMatchObject({ points: 300, purchase_count: 0 })
    await record(receipt(c.id, { pointsUsed: 300, total: 1_000 }))
    expect(await customerRow(c.id)).toMatchObject({ points: 10 })
  })

  it('uses a coupon once, only its owner, not expired', async () => {
    const c = await makeCustomer(db)
    const other = await makeCustomer(db)
    const code = await makeCoupon(db, c.id)
    const expired = await makeCoupon(db, c.id, { expiresAt: new Date(Date.now() - DAY) })
    await expect(record(receipt(other.id, { couponCodes: [code] }))).rejects.toMatchObject({
      code: 'CONFLICT',
    })
    await expect(record(receipt(c.id, { couponCodes: [expired] }))).rejects.toMatchObject({
      code: 'CONFLICT',
    })
    const ok = await record(receipt(c.id, { couponCodes: [code] }))
    await expect(record(receipt(c.id, { couponCodes: [code] }))).rejects.toMatchObject({
      code: 'CONFLICT',
    })
    const coupon = await db
      .selectFrom('coupon')
      .selectAll()
      .where('code', '=', code)
      .executeTakeFirstOrThrow()
    expect(coupon.used_purchase_id).toBe(ok.purchaseId)
  })

  it('follows a merge to the survivor and refuses an erased customer', async () => {
    const survivor = await makeCustomer(db)
    const merged = await makeCustomer(db)
    await db
      .updateTable('customer')
      .set({ merged_into_id: survivor.id })
      .where('id', '=', merged.id)
      .execute()
    const { purchaseId } = await record(receipt(merged.id))
    const row = await db
      .selectFrom('purchase')
      .select('customer_id')
      .where('id', '=', purchaseId)
      .executeTakeFirstOrThrow()
    expect(row.customer_id).toBe(survivor.id)
    await db
      .updateTable('customer')
      .set({ erased_at: new Date() })
      .where('id', '=', survivor.id)
      .execute()
    await expect(record(receipt(merged.id))).rejects.toMatchObject({ code: 'GONE' })
  })

  it('keeps an unmatched order pending until its identity appears', async () => {
    const value = `shop-${randomUUID()}`
    const pending = { kind: 'online_customer', value }
    await record(receipt(null, { pendingIdentity: pending, total: 3_000 }))
    await record(receipt(null, { pendingIdentity: pending, total: 2_000 }))
    const c = await makeCustomer(db)
    const n = await db
      .transaction()
      .execute((trx) => attachPendingPurchases(trx, env, c.id, pending))
    expect(n).toBe(2)
    expect(await customerRow(c.id)).toMatchObject({
      points: 50,
      purchase_count: 2,
      total_spent: '5000',
      spend_12m: '5000',
    })
    const again = await db
      .transaction()
      .execute((trx) => attachPendingPurchases(trx, env, c.id, pending))
    expect(again).toBe(0)
  })

  it('earns whole points at a fractional rate, the same at the register and when an order attaches', async () => {
    const rated = { ...env, POINTS_RATE_PERCENT: 0.7 }
    const c = await makeCustomer(db)
    await db
      .transaction()
      .execute((trx) => recordPurchase(trx, rated, receipt(c.id, { total: 11_000 })))
    expect(await customerRow(c.id)).toMatchObject({ points: 77 }) // not 76: 11000 * 0.7 / 100
    const pending = { kind: 'online_customer', value: `shop-${randomUUID()}` }
    await record(receipt(null, { pendingIdentity: pending, total: 11_000 }))
    await db.transaction().execute((trx) => attachPendingPurchases(trx, rated, c.id, pending))
    expect(await customerRow(c.id)).toMatchObject({ points: 154 })
  })

  it('holds a points balance at the most it can be (2147483647) rather than failing the purchase', async () => {
    const rated = { ...env, POINTS_RATE_PERCENT: 100 }
    const c = await makeCustomer(db)
    const big = () => receipt(c.id, { total: 2_000_000_000 })
    for (const input of [big(), big()]) {
      const recorded = await db.transaction().execute((trx) => recordPurchase(trx, rated, input))
      expect(recorded.created).toBe(true)
    }
    expect(await customerRow(c.id)).toMatchObject({
      points: 2_147_483_647,
      purchase_count: 2,
      total_spent: '4000000000',
    })
    // An order waiting for them attaches, with its purchase counted, the balance held.
    const pending = { kind: 'online_customer', value: `shop-${randomUUID()}` }
    await record(receipt(null, { pendingIdentity: pending, total: 2_000_000_000 }))
    await db.transaction().execute((trx) => attachPendingPurchases(trx, rated, c.id, pending))
    expect(await customerRow(c.id)).toMatchObject({ points: 2_147_483_647, purchase_count: 3 })
    // A merge brings the other customer's points, the balance held.
    const other = await makeCustomer(db)
    await record({ ...big(), customerId: other.id })
    await db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: c.id, mergedId: other.id, reason: 'test' }),
      )
    expect(await customerRow(c.id)).toMatchObject({ points: 2_147_483_647, purchase_count: 4 })
  })

  it('keeps lines as strictly as a table would: no missing sku, quantity or price, arrays of one length', async () => {
    const insert = (lines: {
      line_skus: (string | null)[]
      line_names: (string | null)[]
      line_quantities: (number | null)[]
      line_unit_prices: (number | null)[]
    }) =>
      db
        .insertInto('purchase')
        .values({
          channel: 'online',
          source: 'check',
          external_id: randomUUID(),
          purchased_at: new Date(),
          total: 0,
          // Nulls the generated types do not allow, on purpose.
          ...(lines as unknown as {
            line_skus: string[]
            line_names: string[]
            line_quantities: number[]
            line_unit_prices: number[]
          }),
        })
        .execute()
    const good = {
      line_skus: ['A'],
      line_names: [null],
      line_quantities: [1],
      line_unit_prices: [0],
    }
    await expect(insert(good)).resolves.toBeDefined()
    for (const bad of [
      { ...good, line_quantities: [null] },
      { ...good, line_unit_prices: [null] },
      { ...good, line_skus: [null] },
      { ...good, line_quantities: [0] },
      { ...good, line_unit_prices: [-1] },
      { ...good, line_names: [] },
    ]) {
      await expect(insert(bad)).rejects.toMatchObject({ constraint: 'purchase_lines_check' })
    }
  })
})
