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
import { receiptRowsOf } from './receipt-rows.ts'

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
    await revokeApiKey(db, { key: revoked.key })
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

// Every refusal names, in `details`, the field of the body that caused it, as the register sent
// it (`receipt.pointsUsed`, not the purchase service's own names).
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
