import { DomUtils, parseDocument } from 'htmlparser2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listConsentHistory, loadConsent, setConsent } from '../../src/consent/consent.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { emailTracking } from '../../src/tracking/tracking.service.ts'
import { createCustomer } from '../customers/factories.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { createDelivery, eventsOf } from './support.ts'

let k: TestKizuna
beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k?.stopAll()
})

const EMAIL = 'tracked.shopper@example.jp'

/** A customer with an email, marketing email granted, and one marketing email delivery. */
async function sentEmail() {
  const db = k.deps.db
  const customer = await createCustomer(db, { email: EMAIL })
  await setConsent(db, customer.id, {
    category: 'marketing',
    channel: 'email',
    granted: true,
    source: 'admin',
  })
  const deliveryId = await createDelivery(db, customer.id)
  const tracking = await emailTracking(
    { db, env: { ...k.deps.env, PUBLIC_BASE_URL: k.baseUrl ?? undefined } },
    { deliveryId, customerId: customer.id, category: 'marketing' },
  )
  return { customerId: customer.id, deliveryId, tracking }
}

const hrefs = (html: string) =>
  DomUtils.getElementsByTagName('a', parseDocument(html)).map((a) => a.attribs.href ?? '')

/** The same URL with the token's signature changed in its first character. */
function tamper(url: string): string {
  const dot = url.lastIndexOf('.')
  const swapped = url[dot + 1] === 'A' ? 'B' : 'A'
  return url.slice(0, dot + 1) + swapped + url.slice(dot + 2)
}

describe('email tracking URLs', () => {
  it('carry ids only, never the email address', async () => {
    const { tracking } = await sentEmail()
    const html = tracking.rewriteHtml(
      `<html><body><a href="https://shop.example/sale">Sale</a><a href="mailto:${EMAIL}">Mail</a></body></html>`,
    )
    expect(hrefs(html)[1]).toBe(`mailto:${EMAIL}`)
    const pixel = DomUtils.getElementsByTagName('img', parseDocument(html))[0]
    expect(pixel?.attribs).toMatchObject({ src: tracking.openPixelUrl, width: '1', height: '1' })
    const urls = [tracking.unsubscribeUrl, tracking.openPixelUrl, hrefs(html)[0] ?? '']
    for (const url of urls) {
      expect(url.startsWith(`${k.baseUrl}/`)).toBe(true)
      const token = url.split('/').at(-1) ?? ''
      const payload = Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')
      expect(`${url} ${payload}`).not.toContain('@')
      expect(payload).not.toContain('tracked.shopper')
    }
  })
})

describe('GET /o/:token', () => {
  it('answers a transparent GIF and records the open', async () => {
    const { deliveryId, tracking } = await sentEmail()
    const res = await fetch(tracking.openPixelUrl)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('image/gif')
    expect(res.headers.get('cache-control')).toBe('no-store')
    const body = Buffer.from(await res.arrayBuffer())
    expect(body.subarray(0, 6).toString('latin1')).toBe('GIF89a')
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([{ kind: 'open', url: null }])
  })

  it('records the first open only: the same pixel fetched again (a forward, a proxy) adds nothing', async () => {
    const { deliveryId, tracking } = await sentEmail()
    const statuses = await Promise.all(
      Array.from({ length: 4 }, async () => (await fetch(tracking.openPixelUrl)).status),
    )
    expect(statuses).toEqual([200, 200, 200, 200])
    expect((await fetch(tracking.openPixelUrl)).status).toBe(200)
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([{ kind: 'open', url: null }])
  })

  it('records an open while the customer row is held for update (a merge), taking no lock on it', async () => {
    const { customerId, deliveryId, tracking } = await sentEmail()
    let release = () => {}
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    let locked = () => {}
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve
    })
    const holder = k.deps.db.transaction().execute(async (trx) => {
      await trx
        .selectFrom('customer')
        .select('id')
        .where('id', '=', customerId)
        .forUpdate()
        .execute()
      locked()
      await released
    })
    await isLocked
    try {
      const res = await fetch(tracking.openPixelUrl)
      expect(res.status).toBe(200)
      expect(await eventsOf(k.deps.db, deliveryId)).toEqual([{ kind: 'open', url: null }])
    } finally {
      release()
      await holder
    }
  })

  it('answers the GIF for a tampered token too, recording nothing', async () => {
    const { deliveryId, tracking } = await sentEmail()
    const res = await fetch(tamper(tracking.openPixelUrl))
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('image/gif')
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([])
  })
})

describe('GET /r/:token', () => {
  it('redirects to the signed URL and records the click', async () => {
    const { deliveryId, tracking } = await sentEmail()
    const target = 'https://shop.example/items?id=42&utm_source=email'
    const [tracked] = hrefs(tracking.rewriteHtml(`<a href="${target.replace('&', '&amp;')}">x</a>`))
    expect(tracked).toMatch(new RegExp(`^${k.baseUrl}/r/`))
    const res = await fetch(tracked ?? '', { redirect: 'manual' })
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe(target)
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([{ kind: 'click', url: target }])
  })

  it('answers a HEAD (a link checker, not a person) without recording a click or an open', async () => {
    const { deliveryId, tracking } = await sentEmail()
    const target = 'https://shop.example/sale'
    const [tracked = ''] = hrefs(tracking.rewriteHtml(`<a href="${target}">x</a>`))
    const head = await fetch(tracked, { method: 'HEAD', redirect: 'manual' })
    expect(head.status).toBe(302)
    expect(head.headers.get('location')).toBe(target)
    const pixel = await fetch(tracking.openPixelUrl, { method: 'HEAD' })
    expect(pixel.status).toBe(200)
    expect(pixel.headers.get('content-type')).toBe('image/gif')
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([])

    // The person's own GET still counts.
    await fetch(tracked, { redirect: 'manual' })
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([{ kind: 'click', url: target }])
  })

  it('leaves a link too long to carry in a token as written, so it still leads where it says', async () => {
    const { deliveryId, tracking } = await sentEmail()
    const long = `https://shop.example/search?q=${'a'.repeat(9_500)}`
    const short = `https://shop.example/search?q=${'b'.repeat(5_000)}`
    const [longHref = '', shortHref = ''] = hrefs(
      tracking.rewriteHtml(`<a href="${long}">x</a><a href="${short}">y</a>`),
    )
    // Whatever the email holds, following it reaches the link's own address.
    const reached = async (href: string) => {
      if (!href.startsWith(`${k.baseUrl}/`)) return href
      const res = await fetch(href, { redirect: 'manual' })
      return res.headers.get('location') ?? `${res.status} from ${k.baseUrl}`
    }
    expect(await reached(longHref)).toBe(long)
    // One that fits (a tracked URL under the 8,000 characters proxies take) is still tracked.
    expect(shortHref.length).toBeLessThanOrEqual(8_000)
    expect(await reached(shortHref)).toBe(short)
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([{ kind: 'click', url: short }])
  })

  it('after the customer is erased, still redirects and counts the click without its URL', async () => {
    const { customerId, deliveryId, tracking } = await sentEmail()
    const target = 'https://shop.example/members/taro-yamada'
    const [tracked = ''] = hrefs(tracking.rewriteHtml(`<a href="${target}">x</a>`))
    await fetch(tracked, { redirect: 'manual' })
    await eraseCustomer(k.deps.db, customerId)
    // Tokens do not expire: the old email's link is followed again after the erasure.
    const res = await fetch(tracked, { redirect: 'manual' })
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe(target)
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([
      { kind: 'click', url: null },
      { kind: 'click', url: null },
    ])
  })

  it('answers 404 to a forged or altered token and records nothing (no open redirect)', async () => {
    const { deliveryId, tracking } = await sentEmail()
    const [tracked = ''] = hrefs(tracking.rewriteHtml('<a href="https://shop.example/">x</a>'))
    const bad = await fetch(tamper(tracked), { redirect: 'manual' })
    expect(bad.status).toBe(404)
    expect(bad.headers.get('location')).toBeNull()
    expect(await bad.text()).toContain('not valid')

    // The signed part swapped for another URL, signature kept.
    const token = tracked.split('/').at(-1) ?? ''
    const [, sig] = token.split('.')
    const evil = Buffer.from(
      JSON.stringify(['r', deliveryId, 'https://evil.example/phish']),
    ).toString('base64url')
    const swapped = await fetch(`${k.baseUrl}/r/${evil}.${sig}`, { redirect: 'manual' })
    expect(swapped.status).toBe(404)

    // An open-pixel token is not a click token.
    const pixelToken = tracking.openPixelUrl.split('/').at(-1) ?? ''
    expect((await fetch(`${k.baseUrl}/r/${pixelToken}`, { redirect: 'manual' })).status).toBe(404)
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([])
  })
})

/**
 * Every /u/ page, whatever its answer: never cached (it names the person's unsubscribe), the
 * token not sent on as a referrer, not framed, and running nothing (no script, forms to itself).
 */
function expectPageHeaders(res: Response) {
  expect(res.headers.get('content-type')).toMatch(/^text\/html/)
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(res.headers.get('referrer-policy')).toBe('no-referrer')
  expect(res.headers.get('x-frame-options')).toBe('DENY')
  expect(res.headers.get('x-content-type-options')).toBe('nosniff')
  const csp = (res.headers.get('content-security-policy') ?? '').split(';').map((d) => d.trim())
  expect(csp).toEqual(
    expect.arrayContaining(["default-src 'none'", "form-action 'self'", "frame-ancestors 'none'"]),
  )
  expect(csp.some((d) => d.startsWith('script-src'))).toBe(false)
}

describe('/u/:token', () => {
  it('GET only asks: a confirm form posting to the same URL, consent unchanged', async () => {
    const { customerId, deliveryId, tracking } = await sentEmail()
    const res = await fetch(tracking.unsubscribeUrl)
    expect(res.status).toBe(200)
    expectPageHeaders(res)
    const page = parseDocument(await res.text())
    const form = DomUtils.findOne((e) => e.name === 'form', page.children)
    expect(form?.attribs.method).toBe('post')
    expect(`${k.baseUrl}${form?.attribs.action}`).toBe(tracking.unsubscribeUrl)
    expect((await loadConsent(k.deps.db, customerId)).marketing.email).toBe(true)
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([])
  })

  it('POST List-Unsubscribe=One-Click revokes marketing email, records it once, and is idempotent', async () => {
    const { customerId, deliveryId, tracking } = await sentEmail()
    const oneClick = () =>
      fetch(tracking.unsubscribeUrl, {
        method: 'POST',
        body: new URLSearchParams({ 'List-Unsubscribe': 'One-Click' }),
      })
    const first = await oneClick()
    expect(first.status).toBe(200)
    expectPageHeaders(first)
    const consent = await loadConsent(k.deps.db, customerId)
    expect(consent.marketing).toEqual({ line: true, email: false })
    expect(consent.transactional).toEqual({ line: true, email: true })
    const row = await k.deps.db
      .selectFrom('consent')
      .select(['granted', 'source'])
      .where('customer_id', '=', customerId)
      .where('category', '=', 'marketing')
      .where('channel', '=', 'email')
      .executeTakeFirstOrThrow()
    expect(row).toEqual({ granted: false, source: 'email-unsubscribe' })

    expect((await oneClick()).status).toBe(200)
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([{ kind: 'unsubscribe', url: null }])
  })

  it('an unsubscribe from a receipt stops marketing email too, and the page says so', async () => {
    const db = k.deps.db
    const { customerId } = await sentEmail()
    const receipt = await emailTracking(
      { db, env: { ...k.deps.env, PUBLIC_BASE_URL: k.baseUrl ?? undefined } },
      {
        deliveryId: await createDelivery(db, customerId, 'transactional'),
        customerId,
        category: 'transactional',
      },
    )
    const asked = await (await fetch(receipt.unsubscribeUrl)).text()
    expect(asked).toContain('receipts')
    expect(asked).toContain('offers and news')
    const res = await fetch(receipt.unsubscribeUrl, {
      method: 'POST',
      body: new URLSearchParams({ 'List-Unsubscribe': 'One-Click' }),
    })
    expect(res.status).toBe(200)
    const done = await res.text()
    expect(done).toContain('receipts')
    expect(done).toContain('offers and news')
    expect(await loadConsent(db, customerId)).toEqual({
      transactional: { line: true, email: false },
      marketing: { line: true, email: false },
    })
    const { history } = await listConsentHistory(db, customerId, { limit: 10 })
    expect(history.map((e) => [e.category, e.channel, e.granted, e.source]).sort()).toEqual([
      ['marketing', 'email', false, 'email-unsubscribe'],
      ['marketing', 'email', true, 'admin'],
      ['transactional', 'email', false, 'email-unsubscribe'],
    ])
    // A marketing email's unsubscribe still stops marketing email only.
    const page = await (await fetch((await sentEmail()).tracking.unsubscribeUrl)).text()
    expect(page).not.toContain('receipts')
  })

  it("still unsubscribes after an erasure, recorded after the erasure's withdrawal of marketing", async () => {
    // The consent history an erasure keeps: its withdrawal of marketing where a channel still
    // had it (none on LINE, refused before), then the old email's unsubscribe link, which still
    // goes through.
    const db = k.deps.db
    const { customerId } = await sentEmail()
    await setConsent(db, customerId, {
      category: 'marketing',
      channel: 'line',
      granted: false,
      source: 'admin',
    })
    const receipt = await emailTracking(
      { db, env: { ...k.deps.env, PUBLIC_BASE_URL: k.baseUrl ?? undefined } },
      {
        deliveryId: await createDelivery(db, customerId, 'transactional'),
        customerId,
        category: 'transactional',
      },
    )
    await eraseCustomer(db, customerId)
    const res = await fetch(receipt.unsubscribeUrl, {
      method: 'POST',
      body: new URLSearchParams({ 'List-Unsubscribe': 'One-Click' }),
    })
    expect(res.status).toBe(200)
    const { history } = await listConsentHistory(db, customerId, { limit: 10 })
    expect(history.map((e) => [e.category, e.channel, e.granted, e.source])).toEqual([
      ['transactional', 'email', false, 'email-unsubscribe'],
      ['marketing', 'email', false, 'erasure'],
      ['marketing', 'line', false, 'admin'],
      ['marketing', 'email', true, 'admin'],
    ])
  })

  it('POST without List-Unsubscribe=One-Click, or with a tampered token, changes nothing', async () => {
    const { customerId, deliveryId, tracking } = await sentEmail()
    const empty = await fetch(tracking.unsubscribeUrl, {
      method: 'POST',
      body: new URLSearchParams({}),
    })
    expect(empty.status).toBe(400)
    expectPageHeaders(empty)
    const forged = await fetch(tamper(tracking.unsubscribeUrl), {
      method: 'POST',
      body: new URLSearchParams({ 'List-Unsubscribe': 'One-Click' }),
    })
    expect(forged.status).toBe(404)
    expectPageHeaders(forged)
    const forgedGet = await fetch(tamper(tracking.unsubscribeUrl))
    expect(forgedGet.status).toBe(404)
    expectPageHeaders(forgedGet)
    const tooLarge = await fetch(tracking.unsubscribeUrl, {
      method: 'POST',
      body: new URLSearchParams({ 'List-Unsubscribe': 'One-Click', pad: 'x'.repeat(9_000) }),
    })
    expect(tooLarge.status).toBe(413)
    expectPageHeaders(tooLarge)
    expect((await loadConsent(k.deps.db, customerId)).marketing.email).toBe(true)
    expect(await eventsOf(k.deps.db, deliveryId)).toEqual([])
  })
})
