import { afterAll, beforeAll, describe, expect, it } from 'vitest'
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

let k: TestKizuna
let db: Database
let key: string
let storeCode: string
beforeAll(async () => {
  k = await startTestKizuna({ TIER_THRESHOLDS: 'silver:5000,gold:50000' })
  db = k.deps.db
  ;({ key, storeCode } = await makeStoreKey(db))
})
afterAll(async () => {
  await k.stopAll()
})

const post = (body: unknown, auth: string | null = key) => postPos(k.baseUrl, '/scans', body, auth)
const purchasesOf = (customerId: string) =>
  db.selectFrom('purchase').selectAll().where('customer_id', '=', customerId).execute()
const customerRow = (id: string) =>
  db.selectFrom('customer').selectAll().where('id', '=', id).executeTakeFirstOrThrow()

describe('POST /api/pos/scans', () => {
  it('resolves a member card to name, tier, points and usable coupons', async () => {
    const c = await makeCustomer(db, { points: 120, displayName: 'Sato Hanako' })
    const code = await makeCoupon(db, c.id)
    await makeCoupon(db, c.id, { expiresAt: new Date(Date.now() - 1000) })
    const res = await post({ barcode: c.card })
    expect(res.status).toBe(200)
    const body = (await res.json()) as ScanResponse
    expect(body).toEqual({
      customer: {
        id: c.id,
        displayName: 'Sato Hanako',
        tier: 'regular',
        points: 120,
        coupons: [
          { code, title: 'Welcome 500 yen', discountYen: 500, expiresAt: expect.any(String) },
        ],
      },
    })
  })

  it('resolves a legacy card and a coupon code to their customer', async () => {
    const legacy = legacyCardNumber()
    const c = await makeCustomer(db, { legacyCard: legacy })
    const code = await makeCoupon(db, c.id)
    for (const barcode of [legacy, code]) {
      const res = await post({ barcode })
      expect(res.status).toBe(200)
      expect(((await res.json()) as ScanResponse).customer.id).toBe(c.id)
    }
  })

  it('records a receipt once: a replay answers the first result and writes nothing', async () => {
    const c = await makeCustomer(db, { points: 50 })
    const r = receipt({ pointsUsed: 50 })
    const first = await post({ barcode: c.card, registerId: 'REG-1', receipt: r })
    expect(first.status).toBe(200)
    const body = (await first.json()) as ScanResponse
    expect(body.purchase).toEqual({
      id: expect.any(String),
      total: 8_000,
      pointsEarned: 80,
      pointsUsed: 50,
      couponsUsed: [],
      points: 80,
      replayed: false,
    })
    expect(body.customer).toMatchObject({ points: 80, tier: 'silver' })

    const again = await post({ barcode: c.card, receipt: r })
    expect(again.status).toBe(200)
    expect(await again.json()).toEqual({ ...body, purchase: { ...body.purchase, replayed: true } })
    // The same number with another total is a second sale, not a replay: refused, not dropped.
    const changed = await post({ barcode: c.card, receipt: { ...r, total: 7_999 } })
    expect(changed.status).toBe(409)
    expect((await errorOf(changed)).message).toContain('already recorded with total 8000')

    const rows = await purchasesOf(c.id)
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ source: storeCode, external_id: r.id, register_id: 'REG-1' })
    expect(await customerRow(c.id)).toMatchObject({
      points: 80,
      purchase_count: 1,
      total_spent: '8000',
      spend_12m: '8000',
      tier: 'silver',
    })
    const ledger = await db
      .selectFrom('points_ledger')
      .select('delta')
      .where('customer_id', '=', c.id)
      .orderBy('delta')
      .execute()
    expect(ledger.map((l) => l.delta)).toEqual([-50, 80])
  })

  it('refuses a receipt id replayed with points or coupons the sale did not use with 409', async () => {
    const c = await makeCustomer(db, { points: 500 })
    const [first, other] = [await makeCoupon(db, c.id), await makeCoupon(db, c.id)]
    const r = receipt({ pointsUsed: 100, couponsUsed: [first] })
    const answered = await post({ barcode: c.card, receipt: r })
    expect(answered.status).toBe(200)
    const firstAnswer = (await answered.json()) as ScanResponse
    expect(firstAnswer.purchase).toMatchObject({ pointsUsed: 100, couponsUsed: [first] })
    const before = await customerRow(c.id)
    expect(before.points).toBe(480)

    for (const changed of [
      { barcode: c.card, receipt: { ...r, pointsUsed: 400 } },
      { barcode: c.card, receipt: { ...r, couponsUsed: [other] } },
      { barcode: c.card, receipt: { ...r, couponsUsed: [first, other] } },
      { barcode: other, receipt: { ...r, pointsUsed: 0, couponsUsed: [] } },
    ]) {
      const res = await post(changed)
      expect(res.status).toBe(409)
      expect((await errorOf(res)).message).toContain(`receipt ${r.id} was already recorded with`)
    }
    expect(await customerRow(c.id)).toEqual(before)
    const unused = await db
      .selectFrom('coupon')
      .select('used_at')
      .where('code', '=', other)
      .execute()
    expect(unused).toEqual([{ used_at: null }])

    // The same sale, or a retry that leaves out what was used: a replay, whose answer says what
    // was used. Its coupon scanned rather than listed too, shown as a coupon scan is: that
    // coupon alone (used now, so none), and no name nor balance.
    const replayed = { ...firstAnswer, purchase: { ...firstAnswer.purchase, replayed: true } }
    for (const [same, answer] of [
      [{ barcode: c.card, receipt: r }, replayed],
      [{ barcode: c.card, receipt: { ...r, pointsUsed: 0, couponsUsed: [] } }, replayed],
      [
        { barcode: first, receipt: { ...r, pointsUsed: 0, couponsUsed: [] } },
        {
          customer: { ...replayed.customer, displayName: null, points: null, coupons: [] },
          purchase: { ...replayed.purchase, points: null },
        },
      ],
    ] as const) {
      const res = await post(same)
      expect(res.status).toBe(200)
      expect(await res.json()).toEqual(answer)
    }
    expect(await purchasesOf(c.id)).toHaveLength(1)
  })

  it('refuses a receipt id already recorded for another member with 409, showing nothing of theirs', async () => {
    const first = await makeCustomer(db, { displayName: 'Sato Hanako', points: 300 })
    const second = await makeCustomer(db, { displayName: 'Suzuki Taro' })
    const r = receipt()
    expect((await post({ barcode: first.card, receipt: r })).status).toBe(200)
    const res = await post({ barcode: second.card, receipt: r })
    expect(res.status).toBe(409)
    const text = await res.text()
    expect(text).toContain('already recorded for another member')
    expect(text).not.toContain('Sato')
    expect(text).not.toContain(first.id)
    expect(await purchasesOf(second.id)).toHaveLength(0)
    expect(await customerRow(second.id)).toMatchObject({ points: 0, purchase_count: 0 })
  })

  it('refuses more points than the balance with 409 and writes nothing', async () => {
    const c = await makeCustomer(db, { points: 10 })
    const res = await post({ barcode: c.card, receipt: receipt({ pointsUsed: 11 }) })
    expect(res.status).toBe(409)
    expect((await errorOf(res)).message).toContain('not enough points')
    expect(await purchasesOf(c.id)).toHaveLength(0)
    expect(await customerRow(c.id)).toMatchObject({ points: 10, purchase_count: 0 })
  })

  it('uses a coupon once (scanned or listed); a second use or a foreign coupon is 409', async () => {
    const c = await makeCustomer(db)
    const other = await makeCustomer(db)
    const scanned = await makeCoupon(db, c.id)
    const listed = await makeCoupon(db, c.id)
    const foreign = await makeCoupon(db, other.id)
    const ok = await post({ barcode: scanned, receipt: receipt() })
    expect(ok.status).toBe(200)
    const okBody = (await ok.json()) as ScanResponse
    expect(okBody.customer.coupons).toEqual([])
    expect(okBody.purchase?.couponsUsed).toEqual([scanned])
    const byCard = await post({ barcode: c.card, receipt: receipt({ couponsUsed: [listed] }) })
    expect(((await byCard.json()) as ScanResponse).purchase?.couponsUsed).toEqual([listed])
    const used = await db
      .selectFrom('coupon')
      .select('used_at')
      .where('code', 'in', [scanned, listed])
      .execute()
    expect(used.every((u) => u.used_at !== null)).toBe(true)

    const twice = await post({ barcode: c.card, receipt: receipt({ couponsUsed: [listed] }) })
    expect(twice.status).toBe(409)
    const notMine = await post({ barcode: c.card, receipt: receipt({ couponsUsed: [foreign] }) })
    expect(notMine.status).toBe(409)
    const usedAgain = await post({ barcode: scanned, receipt: receipt() })
    expect(usedAgain.status).toBe(409)
    expect(await purchasesOf(c.id)).toHaveLength(2)
  })

  it('uses a coupon only on a sale made while it existed and had not expired', async () => {
    const HOUR = 3_600_000
    const c = await makeCustomer(db)
    const ago = (ms: number) => new Date(Date.now() - ms).toISOString()
    const issued = await makeCoupon(db, c.id)
    // A receipt backdated to before the coupon was issued: listed, or scanned as the barcode.
    for (const [body, field] of [
      [
        {
          barcode: c.card,
          receipt: receipt({ purchasedAt: ago(24 * HOUR), couponsUsed: [issued] }),
        },
        'receipt.couponsUsed.0',
      ],
      [{ barcode: issued, receipt: receipt({ purchasedAt: ago(24 * HOUR) }) }, 'barcode'],
    ] as const) {
      const res = await post(body)
      expect(res.status).toBe(409)
      const error = await errorOf(res)
      expect(error.message).toContain(`coupon ${issued} cannot be used`)
      expect(error.details).toEqual([{ field, message: expect.stringContaining('after the sale') }])
    }
    expect(await purchasesOf(c.id)).toHaveLength(0)
    const unused = db.selectFrom('coupon').select('used_at').where('code', '=', issued)
    expect(await unused.executeTakeFirstOrThrow()).toEqual({ used_at: null })

    // A register whose clock runs a few minutes slow: the coupon issued just now is usable.
    const slowClock = await post({
      barcode: c.card,
      receipt: receipt({ purchasedAt: ago(5 * 60_000), couponsUsed: [issued] }),
    })
    expect(slowClock.status).toBe(200)

    // A coupon issued three days ago that expired an hour ago: an offline register replaying
    // yesterday's sale may use it, a sale made after it expired may not.
    const lapsed = async () => {
      const code = await makeCoupon(db, c.id, { expiresAt: new Date(Date.now() - HOUR) })
      const created_at = new Date(Date.now() - 72 * HOUR)
      await db.updateTable('coupon').set({ created_at }).where('code', '=', code).execute()
      return code
    }
    const offline = await post({
      barcode: c.card,
      receipt: receipt({ purchasedAt: ago(24 * HOUR), couponsUsed: [await lapsed()] }),
    })
    expect(offline.status).toBe(200)
    const late = await post({
      barcode: c.card,
      receipt: receipt({ purchasedAt: ago(HOUR / 2), couponsUsed: [await lapsed()] }),
    })
    expect(late.status).toBe(409)
    expect(await purchasesOf(c.id)).toHaveLength(2)
  })

  it('answers 422 for a wrong check digit and 404 for an unknown number', async () => {
    const c = await makeCustomer(db)
    const misreadRes = await post({ barcode: misread(c.card) })
    expect(misreadRes.status).toBe(422)
    expect((await errorOf(misreadRes)).message).toBe('misread barcode, scan again')
    const unknown = await post({ barcode: memberCardNumber() })
    expect(unknown.status).toBe(404)
    expect((await errorOf(unknown)).message).toContain('check the number')
    expect((await post({ barcode: 'NOPE-123' })).status).toBe(404)
  })

  it('answers 410 for an erased customer', async () => {
    const { eraseCustomer } = await import('../../src/customers/erase.service.ts')
    const legacy = legacyCardNumber()
    const c = await makeCustomer(db, { legacyCard: legacy })
    await eraseCustomer(db, c.id)
    expect((await post({ barcode: c.card })).status).toBe(410)
    expect((await post({ barcode: legacy })).status).toBe(410)
  })

  it('answers 401 without a key and 403 for a key without scope pos', async () => {
    const c = await makeCustomer(db)
    expect((await post({ barcode: c.card }, null)).status).toBe(401)
    const importer = await makeStoreKey(db, ['import'])
    const res = await post({ barcode: c.card }, importer.key)
    expect(res.status).toBe(403)
    expect((await errorOf(res)).code).toBe('FORBIDDEN')
  })

  it('answers 400 naming the bad field, and for a body that is not JSON', async () => {
    const c = await makeCustomer(db)
    const res = await post({ barcode: c.card, receipt: receipt({ total: -1, lines: [] }) })
    expect(res.status).toBe(400)
    const error = await errorOf(res)
    expect(error.message).toContain('receipt.total')
    expect(error.message).toContain('receipt.lines')
    expect((await errorOf(await post({}))).message).toContain('barcode')
    const notJson = await post('{nope')
    expect(notJson.status).toBe(400)
    // Named like any bad field: the whole body.
    expect(await errorOf(notJson)).toMatchObject({
      code: 'BAD_REQUEST',
      message: '(body): is not valid JSON',
      details: [{ field: '(body)', message: 'is not valid JSON' }],
    })
    expect(await purchasesOf(c.id)).toHaveLength(0)
  })

  it('refuses a receipt that cannot be a sale, naming the field, and writes nothing', async () => {
    const c = await makeCustomer(db, { points: 10_000 })
    const code = await makeCoupon(db, c.id)
    const lines = [{ sku: 'MUG-1', quantity: 2, unitPrice: 1_000 }]
    const day = 86_400_000
    const cases: [Record<string, unknown>, string][] = [
      [
        { lines, total: 2_201 },
        'receipt.total: is more than the lines add up to with 10% tax (2200)',
      ],
      [{ lines, total: 2_000, pointsUsed: 2_201 }, 'receipt.pointsUsed: is more than the lines'],
      [
        { purchasedAt: new Date(Date.now() + day).toISOString() },
        'receipt.purchasedAt: is in the future',
      ],
      [
        { purchasedAt: new Date(Date.now() - 31 * day).toISOString() },
        'receipt.purchasedAt: is more than 30 days ago',
      ],
      // A misspelt field would otherwise leave the coupon unused and the sale recorded.
      [{ couponUsed: [code] }, 'receipt.couponUsed: is not a known field'],
    ]
    for (const [change, message] of cases) {
      const res = await post({ barcode: c.card, receipt: { ...receipt(), ...change } })
      expect(res.status, message).toBe(400)
      expect((await errorOf(res)).message).toContain(message)
    }
    // Discounts may take the total below the lines' sum, tax above it (prices before tax); a
    // register clock some minutes fast is fine.
    const discounted = receipt({ lines, total: 1_500 })
    const ok = await post({
      barcode: c.card,
      receipt: { ...discounted, purchasedAt: new Date(Date.now() + 5 * 60_000).toISOString() },
    })
    expect(ok.status).toBe(200)
    expect(
      (await post({ barcode: c.card, receipt: receipt({ lines, total: 2_200 }) })).status,
    ).toBe(200)
    expect(await purchasesOf(c.id)).toHaveLength(2)
    expect(await customerRow(c.id)).toMatchObject({ points: 10_037, purchase_count: 2 })
  })

  it('answers 400 for a body nested too deep to walk, never a 500', async () => {
    const c = await makeCustomer(db)
    const deep = `{"barcode":"${c.card}","receipt":${'['.repeat(100_000)}${']'.repeat(100_000)}}`
    const res = await post(deep)
    expect(res.status).toBe(400)
    expect((await errorOf(res)).message).toContain('is nested deeper than 64 levels')
    const array = await post(`${'['.repeat(100_000)}${']'.repeat(100_000)}`)
    expect(array.status).toBe(400)
    expect(await purchasesOf(c.id)).toHaveLength(0)
  })

  it('reads a JSON body that starts with a byte-order mark', async () => {
    const c = await makeCustomer(db)
    const res = await post(`\uFEFF${JSON.stringify({ barcode: c.card })}`)
    expect(res.status).toBe(200)
    expect(((await res.json()) as ScanResponse).customer.id).toBe(c.id)
  })

  it('answers 400 for a body that is not UTF-8 (Shift_JIS), never storing U+FFFD in its place, and writes nothing', async () => {
    const c = await makeCustomer(db)
    const r = receipt()
    // 加藤 in Shift_JIS: read as UTF-8 it was two U+FFFD and more, stored as the line's name.
    const [before, after] = JSON.stringify({
      barcode: c.card,
      receipt: { ...r, lines: [{ ...r.lines[0], name: 'NAME' }] },
    }).split('NAME')
    const body = Buffer.concat([
      Buffer.from(before!),
      Buffer.from([0x89, 0xc1, 0x93, 0xa1]),
      Buffer.from(after!),
    ])
    const res = await post(body)
    expect(res.status).toBe(400)
    expect(await errorOf(res)).toMatchObject({
      code: 'BAD_REQUEST',
      message: '(body): is not UTF-8; send UTF-8 JSON',
      details: [{ field: '(body)', message: 'is not UTF-8; send UTF-8 JSON' }],
    })
    expect(await purchasesOf(c.id)).toHaveLength(0)
    // The same name in UTF-8 is recorded.
    expect((await post(Buffer.from(`${before}加藤${after}`))).status).toBe(200)
    expect(await purchasesOf(c.id)).toHaveLength(1)
  })

  it('answers 413 for a body over 256 KB, with or without a Content-Length, and writes nothing', async () => {
    const c = await makeCustomer(db)
    const big = receipt()
    const lines = Array.from({ length: 500 }, (_, i) => ({
      sku: `SKU-${i}`,
      name: 'x'.repeat(600),
      quantity: 1,
      unitPrice: 0,
    }))
    const body = JSON.stringify({ barcode: c.card, receipt: { ...big, lines } })
    expect(body.length).toBeGreaterThan(256 * 1024)
    const res = await post(body)
    expect(res.status).toBe(413)
    expect((await errorOf(res)).code).toBe('PAYLOAD_TOO_LARGE')
    const chunked = await fetch(`${k.baseUrl}/api/pos/scans`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: new Blob([body]).stream(),
      duplex: 'half',
    } as RequestInit)
    expect(chunked.status).toBe(413)
    expect(await purchasesOf(c.id)).toHaveLength(0)
  })

  it('answers 400 naming the field that holds a NUL character (Postgres text cannot), and writes nothing', async () => {
    const c = await makeCustomer(db)
    const r = receipt()
    const res = await post({ barcode: c.card, receipt: { ...r, id: `R\u0000${r.id}` } })
    expect(res.status).toBe(400)
    const error = await errorOf(res)
    expect(error.message).toBe(
      'receipt.id: contains a NUL character (\\u0000), which cannot be stored',
    )
    expect(await purchasesOf(c.id)).toHaveLength(0)
  })

  it('answers 400 naming the line whose product name holds a control character (JSON writes it as 6 bytes in the follow-up), and writes nothing', async () => {
    const c = await makeCustomer(db)
    const r = receipt({ lines: [{ sku: 'A-1', name: 'Cu\u0007p', quantity: 1, unitPrice: 8_000 }] })
    const res = await post({ barcode: c.card, receipt: r })
    expect(res.status).toBe(400)
    expect(await errorOf(res)).toMatchObject({
      code: 'BAD_REQUEST',
      message: 'receipt.lines.0.name: contains a control character (\\u0007)',
    })
    expect(await purchasesOf(c.id)).toHaveLength(0)
  })

  it('answers 400 naming the field that holds a lone UTF-16 surrogate (Postgres would keep U+FFFD, and a replay would be a 409), and writes nothing', async () => {
    const c = await makeCustomer(db)
    const r = receipt({ lines: [{ sku: 'A\ud800', quantity: 1, unitPrice: 8_000 }] })
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await post({ barcode: c.card, receipt: r })
      expect(res.status).toBe(400)
      expect(await errorOf(res)).toMatchObject({
        code: 'BAD_REQUEST',
        message: 'receipt.lines.0.sku: contains an unpaired surrogate (half of a character)',
        details: [
          {
            field: 'receipt.lines.0.sku',
            message: 'contains an unpaired surrogate (half of a character)',
          },
        ],
      })
    }
    expect(await purchasesOf(c.id)).toHaveLength(0)
    // A pair (one character: 🤨) is text like any other.
    const paired = receipt({ lines: [{ sku: 'A\ud83e\udd28', quantity: 1, unitPrice: 8_000 }] })
    expect((await post({ barcode: c.card, receipt: paired })).status).toBe(200)
    expect((await purchasesOf(c.id)).map((p) => p.external_id)).toEqual([paired.id])
  })
})
