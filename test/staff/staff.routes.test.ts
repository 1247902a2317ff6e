import { randomUUID } from 'node:crypto'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashKey } from '../../src/auth/api-key.service.ts'
import type { Database } from '../../src/platform/db.ts'
import { type AppEnv, onError } from '../../src/platform/http.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import { staffRoutes } from '../../src/staff/staff.routes.ts'
import {
  makeCoupon,
  makeCustomer,
  makeStoreKey,
  pointsOf,
  receipt as posReceipt,
  postPos,
} from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna, testEnv } from '../support/harness.ts'

let k: TestKizuna
let db: Database
let key: string
let cookie: string
let base: string
beforeAll(async () => {
  k = await startTestKizuna()
  base = k.baseUrl ?? ''
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
  const res = await login(key)
  expect(res.status).toBe(303)
  cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
})
afterAll(async () => {
  await k.stopAll()
})

function login(apiKey: string, origin = base) {
  return fetch(`${base}/staff/login`, {
    method: 'POST',
    headers: { origin, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ key: apiKey }),
    redirect: 'manual',
  })
}
function voidReceipt(receiptId: string, headers: Record<string, string> = {}, raw = false) {
  const id = raw ? receiptId : encodeURIComponent(receiptId)
  return fetch(`${base}/staff/receipts/${id}/void`, {
    method: 'POST',
    headers: { origin: base, cookie, ...headers },
  })
}
const purchaseOf = (receiptId: string) =>
  db
    .selectFrom('purchase')
    .select(['id', 'voided_at'])
    .where('external_id', '=', receiptId)
    .executeTakeFirstOrThrow()
function scan(body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${base}/staff/scan`, {
    method: 'POST',
    headers: { origin: base, cookie, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
}

describe('POST /staff/login', () => {
  it('sets an HttpOnly SameSite=Strict session cookie that does not hold the key', async () => {
    const res = await login(key)
    expect(res.headers.get('location')).toBe('scan')
    const set = res.headers.get('set-cookie') ?? ''
    expect(set).toMatch(/^kizuna_staff=[\w-]+\.[\w-]{43};/)
    expect(set).toContain('HttpOnly')
    expect(set).toContain('SameSite=Strict')
    expect(set).not.toContain(key)
  })

  it('answers 401 for a wrong key and 403 for a key without scope pos, with no cookie', async () => {
    const wrong = await login(`kz_deadbeef_${'x'.repeat(32)}`)
    expect(wrong.status).toBe(401)
    expect(await wrong.text()).toContain('this API key is not valid')
    const importer = await makeStoreKey(db, ['import'])
    const noScope = await login(importer.key)
    expect(noScope.status).toBe(403)
    expect(noScope.headers.get('set-cookie')).toBeNull()
  })

  it('answers 413 to an oversized login form and 400 to one that is not a form, never a 500', async () => {
    const huge = await fetch(`${base}/staff/login`, {
      method: 'POST',
      headers: { origin: base, 'content-type': 'application/x-www-form-urlencoded' },
      body: `key=${'x'.repeat(64 * 1024)}`,
    })
    expect(huge.status).toBe(413)
    expect(huge.headers.get('set-cookie')).toBeNull()
    const garbage = await fetch(`${base}/staff/login`, {
      method: 'POST',
      headers: { origin: base, 'content-type': 'multipart/form-data' },
      body: 'garbage',
    })
    expect(garbage.status).toBe(400)
    expect(await garbage.text()).toContain('enter the store API key')
  })

  it('marks the cookie Secure when PUBLIC_BASE_URL is https, behind a proxy that says nothing', async () => {
    // nginx's proxy_pass sends no X-Forwarded-Proto unless told to: Kizuna sees plain http.
    const app = new Hono<AppEnv>()
    app.onError(onError)
    app.route(
      '/staff',
      staffRoutes({ ...k.deps, env: testEnv({ PUBLIC_BASE_URL: 'https://shop.example' }) }),
    )
    const res = await app.request('http://shop.example/staff/login', {
      method: 'POST',
      headers: {
        origin: 'https://shop.example',
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ key }),
    })
    expect(res.status).toBe(303)
    expect(res.headers.get('set-cookie')).toMatch(/; Secure/)
  })

  it('refuses a cross-site login form (CSRF)', async () => {
    const res = await login(key, 'https://evil.example')
    expect(res.status).toBe(403)
    expect((await errorOf(res)).code).toBe('FORBIDDEN')
  })
})

describe('POST /staff/scan', () => {
  it('answers the POS summary and records a total-only receipt', async () => {
    const c = await makeCustomer(db, { points: 3 })
    const res = await scan({
      barcode: c.card,
      receipt: { id: `R-${randomUUID()}`, purchasedAt: new Date().toISOString(), total: 500 },
    })
    expect(res.status).toBe(200)
    const body = (await res.json()) as ScanResponse
    expect(body.purchase).toMatchObject({ pointsEarned: 5, points: 8 })
    // Nothing to follow up on without lines: no follow-up that its template would refuse.
    const deliveries = await db
      .selectFrom('delivery')
      .select('template_id')
      .where('customer_id', '=', c.id)
      .execute()
    expect(deliveries).toEqual([])
  })

  it('records a receipt with only some of its lines itemised (the total is what was paid)', async () => {
    const c = await makeCustomer(db)
    const res = await scan({
      barcode: c.card,
      receipt: {
        id: `R-${randomUUID()}`,
        purchasedAt: new Date().toISOString(),
        total: 3_000,
        lines: [{ sku: 'MUG-1', quantity: 1, unitPrice: 500 }],
      },
    })
    expect(res.status).toBe(200)
    expect(((await res.json()) as ScanResponse).purchase).toMatchObject({ total: 3_000 })
  })

  it('refuses points above the total, or above the lines listed, with 400 naming receipt.pointsUsed, and writes nothing', async () => {
    const c = await makeCustomer(db, { points: 10_000 })
    const at = new Date().toISOString()
    const mug = { sku: 'MUG-1', quantity: 1, unitPrice: 500 }
    for (const [receipt, message] of [
      // A mistyped 5000 for 500 would drain the balance.
      [{ total: 500, pointsUsed: 5_000 }, 'is more than the total (500)'],
      [{ total: 500, pointsUsed: 501, lines: [mug] }, 'is more than the total (500)'],
      // Lines listed bound the points as the register API does (500 yen + 10% tax).
      [{ total: 3_000, pointsUsed: 600, lines: [mug] }, 'is more than the lines are worth'],
    ] as const) {
      const res = await scan({
        barcode: c.card,
        receipt: { id: `R-${randomUUID()}`, purchasedAt: at, ...receipt },
      })
      expect(res.status, message).toBe(400)
      const error = await errorOf(res)
      expect(error.message).toContain(`receipt.pointsUsed: ${message}`)
      expect(error.details).toEqual([
        { field: 'receipt.pointsUsed', message: expect.stringContaining(message) },
      ])
    }
    const none = await db
      .selectFrom('purchase')
      .select('id')
      .where('customer_id', '=', c.id)
      .execute()
    expect(none).toEqual([])
    expect(await pointsOf(db, c.id)).toBe(10_000)
    // Points up to the total, and up to the lines' worth, are taken.
    for (const receipt of [
      { total: 500, pointsUsed: 500 },
      { total: 3_000, pointsUsed: 550, lines: [mug] },
    ]) {
      const res = await scan({
        barcode: c.card,
        receipt: { id: `R-${randomUUID()}`, purchasedAt: at, ...receipt },
      })
      expect(res.status).toBe(200)
    }
  })

  it('gives the member card to record against for a card, never for a coupon', async () => {
    const c = await makeCustomer(db, { points: 300 })
    const [coupon, kept] = [await makeCoupon(db, c.id), await makeCoupon(db, c.id)]
    const byCard = await scan({ barcode: c.card })
    expect(await byCard.json()).toMatchObject({ card: c.card, via: 'member_card' })
    const res = await scan({ barcode: coupon })
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(JSON.parse(text)).toMatchObject({
      card: null,
      via: 'coupon',
      customer: { id: c.id, displayName: null, points: null, coupons: [{ code: coupon }] },
    })
    expect(text).not.toContain(c.card)
    expect(text).not.toContain(kept)
    // A receipt against the coupon may not use the member's points.
    const receipt = { id: `R-${randomUUID()}`, purchasedAt: new Date().toISOString(), total: 500 }
    const spend = await scan({ barcode: coupon, receipt: { ...receipt, pointsUsed: 100 } })
    expect(spend.status).toBe(403)
    expect((await errorOf(spend)).details).toEqual([
      { field: 'receipt.pointsUsed', message: expect.stringContaining('scan the member card') },
    ])
  })

  it('answers 401 without a session or with a forged one', async () => {
    const c = await makeCustomer(db)
    expect((await scan({ barcode: c.card }, { cookie: '' })).status).toBe(401)
    const [payload] = cookie.split('=')[1]?.split('.') ?? []
    const forged = `kizuna_staff=${payload}.${'A'.repeat(43)}`
    const res = await scan({ barcode: c.card }, { cookie: forged })
    expect(res.status).toBe(401)
    expect((await errorOf(res)).message).toContain('log in again')
  })

  it('ends the session when its key is revoked', async () => {
    const other = await makeStoreKey(db)
    const res = await login(other.key)
    const session = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
    const c = await makeCustomer(db)
    expect((await scan({ barcode: c.card }, { cookie: session })).status).toBe(200)
    await db
      .updateTable('api_key')
      .set({ revoked_at: new Date() })
      .where('key_hash', '=', hashKey(other.key))
      .execute()
    expect((await scan({ barcode: c.card }, { cookie: session })).status).toBe(401)
  })

  it("ends the logged-out session for any copy of its cookie, not the key's other sessions", async () => {
    const loggedOut = (await login(key)).headers.get('set-cookie')?.split(';')[0] ?? ''
    const other = (await login(key)).headers.get('set-cookie')?.split(';')[0] ?? ''
    const c = await makeCustomer(db)
    expect((await scan({ barcode: c.card }, { cookie: loggedOut })).status).toBe(200)
    const out = await fetch(`${base}/staff/logout`, {
      method: 'POST',
      headers: { origin: base, cookie: loggedOut },
      redirect: 'manual',
    })
    expect(out.status).toBe(303)
    // The browser drops the cookie; a copy of it must not outlive the logout.
    const res = await scan({ barcode: c.card }, { cookie: loggedOut })
    expect(res.status).toBe(401)
    expect((await errorOf(res)).message).toContain('log in again')
    expect((await scan({ barcode: c.card }, { cookie: other })).status).toBe(200)
    expect((await scan({ barcode: c.card })).status).toBe(200)
  })

  it('refuses a request from another origin or without Origin (CSRF)', async () => {
    const c = await makeCustomer(db)
    expect((await scan({ barcode: c.card }, { origin: 'https://evil.example' })).status).toBe(403)
    const res = await fetch(`${base}/staff/scan`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: JSON.stringify({ barcode: c.card }),
    })
    expect(res.status).toBe(403)
  })

  it('answers 400 naming the bad field', async () => {
    const res = await scan({ barcode: '' })
    expect(res.status).toBe(400)
    expect((await errorOf(res)).message).toContain('barcode')
  })
})

describe('POST /staff/receipts/:receiptId/void', () => {
  async function recorded(points = 0) {
    const c = await makeCustomer(db, { points })
    const id = `R-${randomUUID()}/1`
    const res = await scan({
      barcode: c.card,
      receipt: { id, purchasedAt: new Date().toISOString(), total: 5_000 },
    })
    expect(res.status).toBe(200)
    return { c, id }
  }

  it("voids a receipt of the session's store: its points taken back, and again answers the same", async () => {
    const { c, id } = await recorded(10)
    expect(await pointsOf(db, c.id)).toBe(60)
    const res = await voidReceipt(id)
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body).toEqual({
      purchase: {
        id: (await purchaseOf(id)).id,
        receiptId: id,
        voidedAt: expect.any(String),
        pointsReversed: { earned: 50, used: 0, unrecovered: 0 },
        couponsRestored: [],
      },
    })
    expect((await purchaseOf(id)).voided_at).not.toBeNull()
    expect(await pointsOf(db, c.id)).toBe(10)
    const again = await voidReceipt(id)
    expect(again.status).toBe(200)
    expect(await again.json()).toEqual(body)
    expect(await pointsOf(db, c.id)).toBe(10)
  })

  it("answers 404 for a receipt unknown at the session's store, another store's included, and voids nothing", async () => {
    const unknown = await voidReceipt(`R-${randomUUID()}`)
    expect(unknown.status).toBe(404)
    expect((await errorOf(unknown)).message).toContain('check the receipt number')
    const other = await makeStoreKey(db)
    const c = await makeCustomer(db)
    const r = posReceipt()
    expect((await postPos(base, '/scans', { barcode: c.card, receipt: r }, other.key)).status).toBe(
      200,
    )
    expect((await voidReceipt(r.id)).status).toBe(404)
    expect((await purchaseOf(r.id)).voided_at).toBeNull()
  })

  it('answers 400 naming receiptId for a path that does not decode, 401 without a session, 403 from another origin, and voids nothing', async () => {
    const { id } = await recorded()
    const bad = await voidReceipt('%E0%A4%A', {}, true)
    expect(bad.status).toBe(400)
    expect((await errorOf(bad)).details).toEqual([
      { field: 'receiptId', message: 'not valid percent-encoded UTF-8' },
    ])
    const noSession = await voidReceipt(id, { cookie: '' })
    expect(noSession.status).toBe(401)
    expect((await errorOf(noSession)).message).toContain('log in again')
    expect((await voidReceipt(id, { origin: 'https://evil.example' })).status).toBe(403)
    const noOrigin = await fetch(`${base}/staff/receipts/${encodeURIComponent(id)}/void`, {
      method: 'POST',
      headers: { cookie },
    })
    expect(noOrigin.status).toBe(403)
    expect((await purchaseOf(id)).voided_at).toBeNull()
  })
})

describe('GET /staff/scan', () => {
  it('serves the login page with a strict CSP and no caching', async () => {
    const res = await fetch(`${base}/staff/scan`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(await res.text()).toContain('name="key"')
  })
})
