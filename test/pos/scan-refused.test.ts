import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { revokeApiKey } from '../../src/auth/api-key.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import {
  legacyCardNumber,
  makeCoupon,
  makeCustomer,
  makeStoreKey,
  memberCardNumber,
  misread,
  postPos,
  receipt,
} from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'

// A scan with a receipt records the sale in one statement and only then asks why no one was
// found: each refusal here must come back as the bare lookup's would, and leave no trace.

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

const post = (body: unknown, auth: string | null = key) => postPos(k.baseUrl, '/scans', body, auth)

const JOB_STATES = ['wait', 'active', 'delayed', 'prioritized', 'completed', 'failed'] as const

/** Every job of this Kizuna's queues, in any state, as `queue/id`. */
async function allJobs(): Promise<string[]> {
  const queues = Object.values(k.deps.queues.byName)
  const jobs = await Promise.all(queues.map((q) => q.getJobs([...JOB_STATES])))
  return jobs.flatMap((list, i) => list.map((j) => `${queues[i]?.name}/${j.id}`)).sort()
}

/** What a receipt could write for these customers, coupons and receipt ids. */
async function traces(customerIds: string[], couponCodes: string[], receiptIds: string[]) {
  const [purchases, ledger, coupons, deliveries, customers] = await Promise.all([
    db
      .selectFrom('purchase')
      .select('id')
      .where((eb) =>
        eb.or([eb('customer_id', 'in', customerIds), eb('external_id', 'in', receiptIds)]),
      )
      .execute(),
    db.selectFrom('points_ledger').selectAll().where('customer_id', 'in', customerIds).execute(),
    db
      .selectFrom('coupon')
      .select(['code', 'used_at', 'used_purchase_id'])
      .where('code', 'in', couponCodes)
      .orderBy('code')
      .execute(),
    db.selectFrom('delivery').select('id').where('customer_id', 'in', customerIds).execute(),
    db.selectFrom('customer').selectAll().where('id', 'in', customerIds).orderBy('id').execute(),
  ])
  return { purchases, ledger, coupons, deliveries, customers }
}

describe('POST /api/pos/scans with a receipt that is refused', () => {
  it('answers 422, 404 and 410 naming the barcode, as a bare lookup does, and writes nothing', async () => {
    const payer = await makeCustomer(db, { points: 500 })
    const payerCoupon = await makeCoupon(db, payer.id)
    const legacy = legacyCardNumber()
    const gone = await makeCustomer(db, { legacyCard: legacy, points: 300 })
    const goneCoupon = await makeCoupon(db, gone.id)
    await eraseCustomer(db, gone.id)

    const UNKNOWN = 'no member card, legacy card or coupon has this number'
    const ERASED = "this member's data was erased on request"
    const cases: [string, number, string, string][] = [
      [misread(payer.card), 422, 'UNPROCESSABLE', 'misread barcode, scan again'],
      [memberCardNumber(), 404, 'NOT_FOUND', UNKNOWN],
      [legacyCardNumber(), 404, 'NOT_FOUND', UNKNOWN],
      ['NOPE-123', 404, 'NOT_FOUND', UNKNOWN],
      [gone.card, 410, 'GONE', ERASED],
      [legacy, 410, 'GONE', ERASED],
      [goneCoupon, 410, 'GONE', ERASED],
    ]
    const ids = [payer.id, gone.id]
    const codes = [payerCoupon, goneCoupon]
    const receipts = cases.map(() => receipt({ pointsUsed: 100, couponsUsed: [payerCoupon] }))
    const sent = receipts.map((r) => r.id)
    const before = await traces(ids, codes, sent)
    const jobsBefore = await allJobs()
    for (const [i, [barcode, status, code, message]] of cases.entries()) {
      const r = receipts[i]
      for (const body of [{ barcode }, { barcode, registerId: 'REG-1', receipt: r }]) {
        const label = `${barcode} ${body.receipt ? 'with' : 'without'} a receipt`
        const res = await post(body)
        expect(res.status, label).toBe(status)
        const error = await errorOf(res)
        expect(error, label).toMatchObject({ code, message: expect.stringContaining(message) })
        expect(error.details, label).toEqual([{ field: 'barcode', message: error.message }])
      }
    }
    expect(await traces(ids, codes, sent)).toEqual(before)

    // The same receipt with the payer's card is recorded, and queues its follow-up: the jobs
    // seen now are that one's alone (the refused scans' would have been queued before it).
    const r = receipt({ pointsUsed: 100, couponsUsed: [payerCoupon] })
    const ok = await post({ barcode: payer.card, receipt: r })
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as ScanResponse).purchase).toMatchObject({ pointsUsed: 100 })
    const [followUp] = await db
      .selectFrom('delivery')
      .select('id')
      .where('customer_id', '=', payer.id)
      .execute()
    expect(followUp).toBeDefined()
    await eventually(async () => {
      const added = (await allJobs()).filter((id) => !jobsBefore.includes(id))
      expect(added).toEqual([expect.stringContaining(`delivery/delivery-${followUp?.id}`)])
    })
  })

  it('answers 401 for a missing, malformed, unknown or revoked key (403 without scope pos) and writes nothing', async () => {
    const payer = await makeCustomer(db, { points: 500 })
    const coupon = await makeCoupon(db, payer.id)
    const revoked = await makeStoreKey(db)
    await revokeApiKey(db, revoked.key.slice(3, 11))
    const importer = await makeStoreKey(db, ['import'])
    const cases: [string | null, number, string][] = [
      [null, 401, 'send an API key: Authorization: Bearer <key>'],
      ['not-a-key', 401, 'this API key is not valid'],
      [`kz_deadbeef_${'x'.repeat(32)}`, 401, 'this API key is not valid'],
      [`${key.slice(0, -4)}AAAA`, 401, 'this API key is not valid'],
      [revoked.key, 401, 'this API key is not valid'],
      [importer.key, 403, 'this API key lacks the "pos" scope'],
    ]
    const receipts = cases.map(() => receipt({ pointsUsed: 100, couponsUsed: [coupon] }))
    const sent = receipts.map((r) => r.id)
    const before = await traces([payer.id], [coupon], sent)
    const jobsBefore = await allJobs()
    for (const [i, [auth, status, message]] of cases.entries()) {
      const r = receipts[i]
      const res = await post({ barcode: payer.card, receipt: r }, auth)
      expect(res.status, String(auth)).toBe(status)
      expect(await errorOf(res), String(auth)).toMatchObject({
        code: status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN',
        message,
      })
    }
    expect(await traces([payer.id], [coupon], sent)).toEqual(before)
    // The same scan with the store's key goes through: only its follow-up is queued.
    const ok = await post({ barcode: payer.card, receipt: receipt() })
    expect(ok.status).toBe(200)
    await eventually(async () => {
      const added = (await allJobs()).filter((id) => !jobsBefore.includes(id))
      expect(added).toEqual([expect.stringMatching(/^delivery\/delivery-/)])
    })
  })
})
