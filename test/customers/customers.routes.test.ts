import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { fullWidth, legacyCardNumber, misread, printedCardNumber } from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { racingMerge } from '../support/locks.ts'
import { cardNumber, createCoupon, createCustomer, createPurchase } from './factories.ts'

let kizuna: TestKizuna
let adminKey: string
let importKey: string
beforeAll(async () => {
  kizuna = await startTestKizuna()
  adminKey = (await createApiKey(kizuna.deps.db, { storeId: null, scopes: ['admin'] })).key
  importKey = (await createApiKey(kizuna.deps.db, { storeId: null, scopes: ['import'] })).key
})
afterAll(async () => {
  await kizuna?.stopAll()
})

function lookup(identity: string | null, key = adminKey) {
  return lookupQuery(identity === null ? '' : `?identity=${encodeURIComponent(identity)}`, key)
}

/** GET /api/customers with `query` as written (`?identity=…`, encoded or not). */
function lookupQuery(query: string, key = adminKey) {
  return fetch(`${kizuna.baseUrl}/api/customers${query}`, {
    headers: { authorization: `Bearer ${key}` },
  })
}

describe('GET /api/customers', () => {
  it('returns the survivor of a merge, with identities, LINE status, purchases and coupons', async () => {
    const db = kizuna.deps.db
    const card = cardNumber()
    const survivor = await createCustomer(db, { line: true, displayName: 'Aki', points: 30 })
    const merged = await createCustomer(db, {
      email: 'aki.route@example.com',
      identities: [{ kind: 'member_card', value: card }],
    })
    await createPurchase(db, merged.id, { total: 4200, sku: 'ARM-1' })
    const coupon = await createCoupon(db, survivor.id)
    await db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'scan' }),
      )

    const res = await lookup(`member_card:${card}`)
    expect(res.status).toBe(200)
    const body = (await res.json()) as { identities: unknown; recentPurchases: unknown[] }
    expect(body).toMatchObject({
      id: survivor.id,
      displayName: 'Aki',
      email: 'aki.route@example.com',
      points: 30,
      tier: 'regular',
      stats: { purchaseCount: 1, totalSpent: 4200 },
      line: { status: 'friend' },
      coupons: [{ code: coupon, discountYen: 500 }],
    })
    expect(body.identities).toEqual(
      expect.arrayContaining([
        { kind: 'line', value: survivor.lineUid },
        { kind: 'member_card', value: card },
      ]),
    )
    expect(body.recentPurchases).toHaveLength(1)
    expect(body.recentPurchases[0]).toMatchObject({
      total: 4200,
      lines: [{ sku: 'ARM-1', quantity: 1, unitPrice: 4200 }],
    })
  })

  it('answers for the survivor of a merge that commits while it looks, with its consent', async () => {
    // The card's holder was found, then an account link merged it away before the profile was
    // read: the reads found the merged-away row (no identities, purchases or tags) and, its
    // consent rows deleted by the merge, the defaults: marketing on LINE for someone who had
    // opted out.
    const db = kizuna.deps.db
    const card = cardNumber()
    const merged = await createCustomer(db, {
      marketingConsent: false,
      identities: [{ kind: 'member_card', value: card }],
    })
    await createPurchase(db, merged.id, { total: 1800, sku: 'CUP-1' })
    const survivor = await createCustomer(db, { line: true, displayName: 'Mio' })
    // The lookup waits for the holder the link holds (it used not to, answering at once).
    const looking = racingMerge(db, { survivor: survivor.id, merged: merged.id }, () =>
      lookup(`member_card:${card}`),
    )

    const res = await looking
    expect(res.status).toBe(200)
    const body = (await res.json()) as { identities: unknown }
    expect(body).toMatchObject({
      id: survivor.id,
      displayName: 'Mio',
      consent: { marketing: { line: false, email: false } },
      stats: { purchaseCount: 1, totalSpent: 1800 },
      line: { status: 'friend' },
    })
    expect(body.identities).toEqual(
      expect.arrayContaining([
        { kind: 'line', value: survivor.lineUid },
        { kind: 'member_card', value: card },
      ]),
    )
  })

  it('answers 400 naming the field, 404 for an unknown identity, 410 for an erased customer', async () => {
    const missing = await lookup(null)
    expect(missing.status).toBe(400)
    expect((await errorOf(missing)).message).toContain('identity')
    const badKind = await lookup('passport:123')
    expect(badKind.status).toBe(400)
    expect((await errorOf(badKind)).message).toMatch(/^identity: use kind:value/)
    const badCard = await lookup('member_card:1234567890123')
    expect((await errorOf(badCard)).message).toContain('identity: member_card')

    expect((await lookup(`member_card:${cardNumber()}`)).status).toBe(404)

    const card = cardNumber()
    const erased = await createCustomer(kizuna.deps.db, {
      identities: [{ kind: 'member_card', value: card }],
    })
    await kizuna.deps.db
      .updateTable('customer')
      .set({ erased_at: new Date() })
      .where('id', '=', erased.id)
      .execute()
    expect((await lookup(`member_card:${card}`)).status).toBe(410)
  })

  it('answers 400 naming identity when its percent-encoding does not decode', async () => {
    // Hono reads such a value as it came: `line:%ED%A0%80` was looked up as typed, a silent 404.
    for (const raw of [
      'line:%ED%A0%80',
      'member_card:%E0%A4%A',
      'email:a%80@example.com',
      'line:U%',
    ]) {
      const res = await lookupQuery(`?identity=${raw}`)
      expect(res.status, raw).toBe(400)
      const error = await errorOf(res)
      expect(error, raw).toMatchObject({ code: 'BAD_REQUEST', details: [{ field: 'identity' }] })
      expect(error.message).toBe('identity: not valid percent-encoded UTF-8')
    }
    // Encoded as it should be, and with + for a space, as forms send it: found.
    const email = `plus+${Math.random().toString(36).slice(2, 10)}@example.com`
    const c = await createCustomer(kizuna.deps.db, {
      identities: [{ kind: 'email', value: email }],
    })
    for (const query of [
      encodeURIComponent(`email:${email}`),
      `email:+${encodeURIComponent(email)}+`,
    ]) {
      const res = await lookupQuery(`?identity=${query}`)
      expect(res.status, query).toBe(200)
      expect(await res.json()).toMatchObject({ id: c.id })
    }
  })

  it('finds a phone written +81, percent-encoded or not (a + read as a space)', async () => {
    const digits = String(10_000_000 + Math.floor(Math.random() * 89_999_999))
    const c = await createCustomer(kizuna.deps.db, {
      identities: [{ kind: 'phone', value: `090${digits}` }],
    })
    const typed = `+81 90-${digits.slice(0, 4)}-${digits.slice(4)}`
    for (const query of [
      encodeURIComponent(`phone:${typed}`),
      `phone:${typed.replaceAll(' ', '%20')}`, // the + sent as is, read as a space
      `phone:+8190${digits}`,
    ]) {
      const res = await lookupQuery(`?identity=${query}`)
      expect(res.status, query).toBe(200)
      expect(await res.json(), query).toMatchObject({ id: c.id })
    }
  })

  it('answers 410 for the card, shop account or email of a customer erased on request', async () => {
    const db = kizuna.deps.db
    const card = cardNumber()
    const tag = Math.random().toString(36).slice(2, 10)
    const customer = await createCustomer(db, {
      email: `erased.${tag}@example.com`,
      identities: [
        { kind: 'member_card', value: card },
        { kind: 'online_customer', value: `shop-${tag}` },
        { kind: 'email', value: `erased.${tag}@example.com` },
      ],
    })
    await eraseCustomer(db, customer.id)
    for (const identity of [
      `member_card:${card}`,
      `online_customer:shop-${tag}`,
      `email:Erased.${tag}@example.com`,
    ]) {
      const res = await lookup(identity)
      expect(res.status, identity).toBe(410)
      expect((await errorOf(res)).message).toContain('erased')
    }
  })

  it('finds a card typed in full width or as printed, as the register does', async () => {
    const [card, legacy] = [cardNumber(), `AB-${legacyCardNumber()} 7`]
    const customer = await createCustomer(kizuna.deps.db, {
      identities: [
        { kind: 'member_card', value: card },
        { kind: 'legacy_card', value: legacy },
      ],
    })
    for (const identity of [
      `member_card:${fullWidth(card)}`,
      `member_card:${printedCardNumber(card)}`,
      `member_card:\u3000${fullWidth(printedCardNumber(card))}`,
      `legacy_card:${fullWidth(legacy)}`,
    ]) {
      const res = await lookup(identity)
      expect(res.status, identity).toBe(200)
      expect(await res.json()).toMatchObject({ id: customer.id })
    }
    const misreadCard = await lookup(`member_card:${fullWidth(misread(card))}`)
    expect(misreadCard.status).toBe(400)
    expect((await errorOf(misreadCard)).message).toContain('check digit')
  })

  it('needs an admin key', async () => {
    expect((await lookup(`member_card:${cardNumber()}`, importKey)).status).toBe(403)
  })
})
