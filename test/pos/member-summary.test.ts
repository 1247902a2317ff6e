import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { memberSummary } from '../../src/pos/member-summary.ts'
import { makeCoupon, makeCustomer, recordOnlinePurchase } from '../purchases/fixtures.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'

// memberSummary is read for a customer id found earlier (a replayed receipt, a legacy card linked
// at the register, a bare scan whose card was bound in the meantime): a merge committing in between
// (an account link, a card linked at another register) left the summary on the merged row, which
// keeps no points, no coupons and its old tier.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL, TIER_THRESHOLDS: 'silver:5000,gold:50000' })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 2 })
})
afterAll(async () => {
  await db.destroy()
})

describe('memberSummary', () => {
  it("shows the survivor's points, tier and coupons for a customer merged since the card was read", async () => {
    const s = await makeCustomer(db, { points: 10, displayName: 'Sato Hanako' })
    const m = await makeCustomer(db, { points: 300 })
    const coupon = await makeCoupon(db, m.id)
    await recordOnlinePurchase(db, env, m.id, [{ sku: 'SOFA-1', unitPrice: 60_000 }])
    expect(await memberSummary(db, m.id)).toMatchObject({ tier: 'gold', points: 900 })

    await db.transaction().execute((trx) =>
      mergeCustomers(trx, {
        survivorId: s.id,
        mergedId: m.id,
        reason: 'scan',
        tierThresholds: env.TIER_THRESHOLDS,
      }),
    )
    const summary = await memberSummary(db, m.id)
    expect(summary).toEqual(await memberSummary(db, s.id))
    expect(summary).toMatchObject({
      id: s.id,
      displayName: 'Sato Hanako',
      tier: 'gold',
      points: 910,
      coupons: [expect.objectContaining({ code: coupon })],
    })
    // The merged row keeps nothing of the person's standing, its tier included.
    const merged = await db
      .selectFrom('customer')
      .select(['tier', 'points', 'spend_12m', 'merged_into_id'])
      .where('id', '=', m.id)
      .executeTakeFirstOrThrow()
    expect(merged).toEqual({ tier: 'regular', points: 0, spend_12m: '0', merged_into_id: s.id })
  })
})
