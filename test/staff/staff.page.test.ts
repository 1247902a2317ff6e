import { randomUUID } from 'node:crypto'
import type {
  Browser,
  Page,
  Request as PageRequest,
  Response as PageResponse,
  Route,
} from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/platform/db.ts'
import {
  fullWidth,
  makeCoupon,
  makeCustomer,
  makeStoreKey,
  memberCardNumber,
  misread,
  pointsOf,
  printedCardNumber,
} from '../purchases/fixtures.ts'
import { launchChromium } from '../support/browser.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'

let k: TestKizuna
let db: Database
let browser: Browser
let page: Page
let key: string
let storeCode: string
beforeAll(async () => {
  k = await startTestKizuna()
  db = k.deps.db
  ;({ key, storeCode } = await makeStoreKey(db))
  browser = await launchChromium()
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } })
  page = await context.newPage()
  page.setDefaultTimeout(10_000)
})
afterAll(async () => {
  await browser?.close()
  await k?.stopAll()
})

/** Scans `barcode` and waits until `name` is on screen with the receipt form ready for them. */
async function scanMember(barcode: string, name: string) {
  await scanCard(barcode)
  await expect.poll(() => page.locator('#member-name').textContent()).toBe(name)
  await page.locator('#receipt-form:not([aria-busy])').waitFor()
}

/** Types a receipt's id and total into the receipt form. */
async function fillReceipt(receiptId: string, total: string) {
  await page.getByLabel(/Receipt id/).fill(receiptId)
  await page.getByLabel(/Total/).fill(total)
}

/**
 * Holds back the page's POSTs to /staff/scan whose body `which` picks until the returned function
 * is called (it may be called more than once).
 */
async function holdScans(which: (body: string) => boolean): Promise<() => void> {
  let release = () => {}
  const held = new Promise<void>((resolve) => {
    release = resolve
  })
  await page.route('**/staff/scan', async (route) => {
    const request = route.request()
    if (request.method() === 'POST' && which(request.postData() ?? '')) await held
    await route.fallback()
  })
  return release
}

/** Types like a keyboard-wedge scanner: the digits, then Enter. */
async function scanCard(barcode: string) {
  await page.locator('#barcode').focus()
  await page.keyboard.type(barcode)
  await page.keyboard.press('Enter')
}

describe('GET /staff/scan in Chromium', () => {
  it('logs in with the store key, looks up a member, records a receipt once', async () => {
    const member = await makeCustomer(db, { points: 120, displayName: 'Sato Hanako' })
    const coupon = await makeCoupon(db, member.id)

    await page.goto(`${k.baseUrl}/staff/scan`)
    await page.locator('#key').fill(`kz_deadbeef_${'x'.repeat(32)}`)
    await page.getByRole('button', { name: /Log in/ }).click()
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not valid')
    expect(await page.context().cookies()).toEqual([])

    // A key pasted with a space inside is said to be so, not as an Authorization header.
    await page.locator('#key').fill(`${key.slice(0, 12)} ${key.slice(12)}`)
    await page.getByRole('button', { name: /Log in/ }).click()
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('space or line break')
    expect(await page.getByRole('alert').textContent()).not.toContain('Authorization')
    expect(await page.context().cookies()).toEqual([])

    // Spaces around it (as pasted) are not part of it.
    await page.locator('#key').fill(`  ${key}\t `)
    await page.getByRole('button', { name: /Log in/ }).click()
    await page.getByRole('heading', { name: /Member scan/ }).waitFor()
    const [cookie] = await page.context().cookies()
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/staff' })
    expect(cookie?.value).not.toContain(key.slice(12))
    // Focused for the scanner once scan.js has run.
    await page.locator('#barcode:focus').waitFor()
    const camera = await page.evaluate("'BarcodeDetector' in window")
    expect(await page.locator('#camera').isVisible()).toBe(camera)

    await scanCard(member.card)
    await expect.poll(() => page.locator('#member-name').textContent()).toBe('Sato Hanako')
    expect(await page.locator('#member-points').textContent()).toBe('120 pt')
    expect(await page.locator('#member-tier').textContent()).toBe('regular')
    expect(await page.locator('#member-coupons').textContent()).toContain(coupon)
    expect(await page.locator('#barcode').inputValue()).toBe('')

    const receiptId = `R-${randomUUID()}`
    const record = async () => {
      await fillReceipt(receiptId, '8000')
      await page.getByLabel(/Points to use/).fill('20')
      await page.getByLabel(/Coupon/).selectOption(coupon)
      await page.getByRole('button', { name: /Record/ }).click()
    }
    await record()
    const status = page.getByRole('status')
    await expect.poll(() => status.textContent()).toContain('+80 pt')
    expect(await status.textContent()).toContain('New balance: 180 pt')
    expect(await page.locator('#member-points').textContent()).toBe('180 pt')
    await page.screenshot({ path: '/tmp/staff.png', fullPage: true })

    // The same receipt again (a double tap, a retry) answers the first result.
    // Filled once the scan's answer is in: it resets the form.
    await scanCard(member.card)
    await page.locator('#receipt-form:not([aria-busy])').waitFor()
    await page.getByLabel(/Coupon/).selectOption('')
    await fillReceipt(receiptId, '8000')
    await page.getByRole('button', { name: /Record/ }).click()
    await expect.poll(() => status.textContent()).toContain('Already recorded')

    const purchases = await db
      .selectFrom('purchase')
      .select(['external_id', 'source', 'total', 'points_earned', 'points_used'])
      .where('customer_id', '=', member.id)
      .execute()
    expect(purchases).toEqual([
      {
        external_id: receiptId,
        source: storeCode,
        total: 8000,
        points_earned: 80,
        points_used: 20,
      },
    ])
  })

  it('shows the 422 for a misread, the 404 for an unknown card, and hides the member', async () => {
    const member = await makeCustomer(db)
    await scanCard(member.card)
    await page.locator('#member').waitFor()
    await scanCard(misread(member.card))
    const alert = page.getByRole('alert')
    await expect.poll(() => alert.textContent()).toContain('(422): misread barcode, scan again')
    expect(await page.locator('#member').isHidden()).toBe(true)
    expect(await page.locator('#receipt-form').isHidden()).toBe(true)

    await scanCard(memberCardNumber())
    await expect.poll(() => alert.textContent()).toContain('(404)')
    expect(await alert.textContent()).toContain('check the number')
  })

  it('says the server cannot be reached, with what to do, when the network drops a scan', async () => {
    const member = await makeCustomer(db)
    await page.route('**/staff/scan', (route) =>
      route.request().method() === 'POST' ? route.abort('internetdisconnected') : route.continue(),
    )
    try {
      await scanCard(member.card)
      const alert = page.getByRole('alert')
      await expect.poll(() => alert.textContent()).toContain('cannot reach Kizuna')
      expect(await alert.textContent()).not.toMatch(/Error 0|\(0\)/)
    } finally {
      await page.unroute('**/staff/scan')
    }
    await scanCard(member.card)
    await page.locator('#member').waitFor()
    expect(await page.locator('#alert').textContent()).toBe('')
  })

  it("says to press Record again, keeping the receipt typed, when a receipt's answer is lost", async () => {
    const member = await makeCustomer(db, { displayName: 'Kubo Nao', points: 100 })
    await scanMember(member.card, 'Kubo Nao')
    const receiptId = `R-${randomUUID()}`
    await fillReceipt(receiptId, '4000')
    await page.getByLabel(/Points to use/).fill('10')
    const alert = page.getByRole('alert')
    const kept = async () => ({
      receiptId: await page.getByLabel(/Receipt id/).inputValue(),
      total: await page.getByLabel(/Total/).inputValue(),
      points: await page.getByLabel(/Points to use/).inputValue(),
      member: await page.locator('#member-name').textContent(),
    })
    const typed = { receiptId, total: '4000', points: '10', member: 'Kubo Nao' }
    const withReceipt = (route: Route) =>
      route.request().method() === 'POST' &&
      (route.request().postData() ?? '').includes('"receipt"')
    // The server records the receipt; its answer is lost on the way back.
    await page.route('**/staff/scan', async (route) => {
      if (!withReceipt(route)) return route.fallback()
      await route.fetch()
      await route.abort('connectionreset')
    })
    try {
      await page.getByRole('button', { name: /Record/ }).click()
      await expect.poll(() => alert.textContent()).toContain('press Record again')
      expect(await alert.textContent()).toContain('never recorded twice')
      expect(await alert.textContent()).not.toContain('scan again')
      expect(await kept()).toEqual(typed)
    } finally {
      await page.unroute('**/staff/scan')
    }
    // A gateway's 504 without a body says the same, not an empty "Error 504 (504): ".
    await page.route('**/staff/scan', (route) =>
      withReceipt(route) ? route.fulfill({ status: 504, body: '' }) : route.fallback(),
    )
    try {
      await page.getByRole('button', { name: /Record/ }).click()
      await expect.poll(() => alert.textContent()).toContain('(504)')
      expect(await alert.textContent()).toContain('press Record again')
      expect(await kept()).toEqual(typed)
    } finally {
      await page.unroute('**/staff/scan')
    }
    // The API's 503 says "scan again" to a register; on this page that would reset the receipt.
    const busy = "busy: this member's record is being changed by another task right now; scan again"
    await page.route('**/staff/scan', (route) =>
      withReceipt(route)
        ? route.fulfill({
            status: 503,
            contentType: 'application/json',
            body: JSON.stringify({ error: { code: 'UNAVAILABLE', message: busy } }),
          })
        : route.fallback(),
    )
    try {
      await page.getByRole('button', { name: /Record/ }).click()
      await expect.poll(() => alert.textContent()).toContain('(503): busy')
      expect(await alert.textContent()).toContain('press Record again')
      expect(await alert.textContent()).not.toContain('scan again')
      expect(await kept()).toEqual(typed)
    } finally {
      await page.unroute('**/staff/scan')
    }
    // Pressed again, the receipt is the one already recorded: once.
    await page.getByRole('button', { name: /Record/ }).click()
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Already recorded')
    expect(await page.locator('#alert').textContent()).toBe('')
    const rows = await db
      .selectFrom('purchase')
      .select(['external_id', 'total', 'points_used'])
      .where('customer_id', '=', member.id)
      .execute()
    expect(rows).toEqual([{ external_id: receiptId, total: 4000, points_used: 10 }])
    expect(await pointsOf(db, member.id)).toBe(130)
  })

  it('replays a receipt whose answer was lost after the page is reloaded or staff log in again', async () => {
    const member = await makeCustomer(db, { displayName: 'Ueda Rin', points: 0 })
    await scanMember(member.card, 'Ueda Rin')
    const receiptId = `R-${randomUUID()}`
    await fillReceipt(receiptId, '3000')
    const alert = page.getByRole('alert')
    const status = page.getByRole('status')
    // The server records the receipt; its answer is lost on the way back.
    await page.route('**/staff/scan', async (route) => {
      const body = route.request().postData() ?? ''
      if (route.request().method() !== 'POST' || !body.includes('"receipt"')) {
        return route.fallback()
      }
      await route.fetch()
      await route.abort('connectionreset')
    })
    try {
      await page.getByRole('button', { name: /Record/ }).click()
      await expect.poll(() => alert.textContent()).toContain('press Record again')
    } finally {
      await page.unroute('**/staff/scan')
    }
    const sent = (await db
      .selectFrom('purchase')
      .select('purchased_at')
      .where('customer_id', '=', member.id)
      .executeTakeFirstOrThrow()) as { purchased_at: Date }
    const recordAgain = async () => {
      await scanMember(member.card, 'Ueda Rin')
      await fillReceipt(receiptId, '3000')
      const answer = page.waitForResponse(
        (r) =>
          r.url().endsWith('/staff/scan') && (r.request().postData() ?? '').includes(receiptId),
      )
      await page.getByRole('button', { name: /Record/ }).click()
      return (await answer).status()
    }
    // The page reloaded (the tab kept): the receipt is the one already recorded, at its time.
    await page.reload()
    await page.locator('#barcode:focus').waitFor()
    expect(await recordAgain()).toBe(200)
    await expect.poll(() => status.textContent()).toContain('Already recorded')
    expect(await page.locator('#alert').textContent()).toBe('')
    // Logged out and in again (a session timed out) in the same tab: the same.
    await page.getByRole('button', { name: /Log out/ }).click()
    await page.locator('#key').fill(key)
    await page.getByRole('button', { name: /Log in/ }).click()
    await page.locator('#barcode:focus').waitFor()
    expect(await recordAgain()).toBe(200)
    await expect.poll(() => status.textContent()).toContain('Already recorded')
    const rows = await db
      .selectFrom('purchase')
      .select(['external_id', 'purchased_at', 'points_earned'])
      .where('customer_id', '=', member.id)
      .execute()
    expect(rows).toEqual([
      { external_id: receiptId, purchased_at: sent.purchased_at, points_earned: 30 },
    ])
    expect(await pointsOf(db, member.id)).toBe(30)

    // Sent from another tab (its own times), the id is said to be recorded already, with when,
    // and that a retry of the same sale needs nothing: not to record it under a new id.
    await page.evaluate(() => sessionStorage.clear())
    await page.reload()
    await page.locator('#barcode:focus').waitFor()
    expect(await recordAgain()).toBe(409)
    await expect.poll(() => alert.textContent()).toContain('already recorded')
    const text = (await alert.textContent()) ?? ''
    expect(text).toContain(receiptId)
    // When, as the register's clock reads it.
    const when = await page.evaluate(
      (at) => new Date(at).toLocaleString('ja-JP', { dateStyle: 'short', timeStyle: 'short' }),
      sent.purchased_at.toISOString(),
    )
    expect(text).toContain(when)
    expect(text).toContain('nothing to do')
    expect(text).not.toContain('needs its own receipt id')
    expect(await pointsOf(db, member.id)).toBe(30)
    // Wrong after all, it is voided from there.
    page.once('dialog', (dialog) => dialog.accept())
    await page.getByRole('button', { name: /Void this receipt/ }).click()
    await expect.poll(() => status.textContent()).toContain(`Voided: ${receiptId}`)
    expect(await pointsOf(db, member.id)).toBe(0)

    // What the tab keeps is bounded: the newest 200, none older than a day.
    await page.evaluate(() => {
      const now = Date.now()
      const kept = Array.from({ length: 300 }, (_, i) => [
        `S\nR-${i}`,
        new Date(now - (i === 0 ? 2 : 1) * 86_400_000 + 60_000).toISOString(),
      ])
      sessionStorage.setItem('kizuna.staff.soldAt.v1', JSON.stringify(kept.reverse()))
    })
    await page.reload()
    await page.locator('#barcode:focus').waitFor()
    await scanMember(member.card, 'Ueda Rin')
    await fillReceipt(`R-${randomUUID()}`, '100')
    await page.getByRole('button', { name: /Record/ }).click()
    await expect.poll(() => status.textContent()).toContain('Recorded')
    const stored: [string, string][] = JSON.parse(
      await page.evaluate(() => sessionStorage.getItem('kizuna.staff.soldAt.v1') ?? '[]'),
    )
    expect(stored).toHaveLength(200)
    expect(stored.map(([id]) => id)).not.toContain('S\nR-0')
    expect(stored.at(-1)?.[0]).toContain(`${storeCode}\n`)
  })

  it('names the receipt line and field left empty, and records nothing until it is filled', async () => {
    const member = await makeCustomer(db, { displayName: 'Hara Emi' })
    const purchases = () =>
      db
        .selectFrom('purchase')
        .select(['external_id', 'line_skus', 'line_quantities', 'line_unit_prices'])
        .where('customer_id', '=', member.id)
        .execute()
    await scanMember(member.card, 'Hara Emi')
    const receiptId = `R-${randomUUID()}`
    await fillReceipt(receiptId, '1200')
    await page.locator('#receipt-form details').evaluate((details: { open: boolean }) => {
      details.open = true
    })
    const alert = page.getByRole('alert')
    const record = () => page.getByRole('button', { name: /Record/ }).click()
    // The second row, as staff see it: a SKU and a quantity, no price (not an item given free).
    await page.getByLabel('SKU 2').fill('SKU-A')
    await page.getByLabel('Quantity 2').fill('2')
    await record()
    await expect.poll(() => alert.textContent()).toContain('Line 2: enter the unit price')
    expect(await page.getByLabel('Unit price 2').getAttribute('aria-invalid')).toBe('true')
    expect(await purchases()).toEqual([])
    // No quantity (not 1), then no SKU (not a line dropped).
    await page.getByLabel('Unit price 2').fill('600')
    await page.getByLabel('Quantity 2').fill('')
    await record()
    await expect.poll(() => alert.textContent()).toContain('Line 2: enter the quantity')
    await page.getByLabel('Quantity 2').fill('2')
    await page.getByLabel('SKU 2').fill('')
    await record()
    await expect.poll(() => alert.textContent()).toContain('Line 2: enter the SKU')
    expect(await purchases()).toEqual([])

    await page.getByLabel('SKU 2').fill('SKU-A')
    await record()
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Recorded')
    expect(await page.locator('#alert').textContent()).toBe('')
    expect(await page.locator('#receipt-form [aria-invalid]').count()).toBe(0)
    expect(await purchases()).toEqual([
      {
        external_id: receiptId,
        line_skus: ['SKU-A'],
        line_quantities: [2],
        line_unit_prices: [600],
      },
    ])
  })

  it('shows a 409 from the API when the points exceed the balance', async () => {
    const member = await makeCustomer(db, { points: 5 })
    await scanCard(member.card)
    // This member on screen, not the last test's (the receipt form may still show for that one).
    await expect.poll(() => page.locator('#member-points').textContent()).toBe('5 pt')
    await page.locator('#receipt-form').waitFor()
    await page.getByLabel(/Receipt id/).fill(`R-${randomUUID()}`)
    await page.getByLabel(/Total/).fill('1000')
    await page
      .getByLabel(/Points to use/)
      .evaluate((el: { value: string; removeAttribute(name: string): void }) => {
        el.removeAttribute('max')
        el.value = '50'
      })
    await page.getByRole('button', { name: /Record/ }).click()
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('(409)')
    const rows = await db
      .selectFrom('purchase')
      .select('id')
      .where('customer_id', '=', member.id)
      .execute()
    expect(rows).toHaveLength(0)
  })

  it('keeps the next member on screen when a slow receipt answer arrives after their scan', async () => {
    const first = await makeCustomer(db, { displayName: 'Ito Aoi' })
    const next = await makeCustomer(db, { displayName: 'Kato Ren' })
    await scanCard(first.card)
    await expect.poll(() => page.locator('#member-name').textContent()).toBe('Ito Aoi')
    // The first receipt's answer is held back until the next card has been scanned.
    const release = await holdScans((body) => body.includes('"receipt"'))
    const firstReceipt = `R-${randomUUID()}`
    await fillReceipt(firstReceipt, '1000')
    await page.getByRole('button', { name: /Record/ }).click()
    await scanCard(next.card)
    await expect.poll(() => page.locator('#member-name').textContent()).toBe('Kato Ren')
    release()
    await expect.poll(() => page.locator('#result').textContent()).toContain('Ito Aoi')
    expect(await page.locator('#member-name').textContent()).toBe('Kato Ren')
    await page.unroute('**/staff/scan')

    // What is on screen is who the next receipt goes to.
    const nextReceipt = `R-${randomUUID()}`
    await fillReceipt(nextReceipt, '2000')
    await page.getByRole('button', { name: /Record/ }).click()
    await expect.poll(() => page.locator('#result').textContent()).toContain('Recorded')
    const owners = await db
      .selectFrom('purchase')
      .select(['external_id', 'customer_id'])
      .where('external_id', 'in', [firstReceipt, nextReceipt])
      .orderBy('total')
      .execute()
    expect(owners).toEqual([
      { external_id: firstReceipt, customer_id: first.id },
      { external_id: nextReceipt, customer_id: next.id },
    ])
  })

  it('records nothing while the next card is looked up, then shows and announces that card', async () => {
    const first = await makeCustomer(db, { displayName: 'Ono Sora' })
    const next = await makeCustomer(db, { displayName: 'Sano Kai' })
    await scanMember(first.card, 'Ono Sora')
    // Staff start the first member's receipt; the next card is scanned before it is recorded.
    const receiptId = `R-${randomUUID()}`
    await fillReceipt(receiptId, '1000')
    const sent: string[] = []
    const listen = (req: PageRequest) => {
      if (req.method() === 'POST' && req.url().endsWith('/staff/scan'))
        sent.push(req.postData() ?? '')
    }
    page.on('request', listen)
    const release = await holdScans((body) => !body.includes('"receipt"'))
    try {
      await scanCard(next.card)
      // The form still shows the first member's receipt: a submit now (Record, Enter in a
      // field) would record the next member's sale on them.
      await page
        .locator('#receipt-form')
        .evaluate((form: { requestSubmit(): void }) => form.requestSubmit())
      expect(await page.getByRole('button', { name: /Record/ }).isDisabled()).toBe(true)
      expect(await page.locator('#receipt-form').getAttribute('aria-busy')).toBe('true')
      release()
      await expect.poll(() => page.locator('#member-name').textContent()).toBe('Sano Kai')
    } finally {
      release()
      page.off('request', listen)
      await page.unroute('**/staff/scan')
    }
    await page.locator('#receipt-form:not([aria-busy])').waitFor()
    expect(await page.getByRole('status').textContent()).toContain('Sano Kai')
    expect(sent.filter((body) => body.includes('"receipt"'))).toEqual([])

    // The receipt typed again is the next member's.
    await fillReceipt(receiptId, '1000')
    await page.getByRole('button', { name: /Record/ }).click()
    await expect.poll(() => page.locator('#result').textContent()).toContain('Recorded')
    const owners = await db
      .selectFrom('purchase')
      .select('customer_id')
      .where('external_id', '=', receiptId)
      .execute()
    expect(owners).toEqual([{ customer_id: next.id }])
  })

  it("leaves the next card's answer to show when a receipt is voided during its lookup", async () => {
    const first = await makeCustomer(db, { displayName: 'Ota Yu' })
    const next = await makeCustomer(db, { displayName: 'Ueno Mio' })
    await scanMember(first.card, 'Ota Yu')
    const releaseReceipt = await holdScans((body) => body.includes('"receipt"'))
    const releaseLookup = await holdScans((body) => !body.includes('"receipt"'))
    const receiptId = `R-${randomUUID()}`
    try {
      await fillReceipt(receiptId, '1000')
      await page.getByRole('button', { name: /Record/ }).click()
      await scanCard(next.card)
      // The receipt's answer comes first, while the next card is still looked up; staff void it.
      releaseReceipt()
      await expect.poll(() => page.locator('#result').textContent()).toContain('Ota Yu')
      page.once('dialog', (dialog) => dialog.accept())
      await page.getByRole('button', { name: /Void this receipt/ }).click()
      await expect.poll(() => page.locator('#result').textContent()).toContain('Voided')
      releaseLookup()
      await expect.poll(() => page.locator('#member-name').textContent()).toBe('Ueno Mio')
    } finally {
      releaseReceipt()
      releaseLookup()
      await page.unroute('**/staff/scan')
    }
    await page.locator('#receipt-form:not([aria-busy])').waitFor()
    expect(await page.getByRole('button', { name: /Record/ }).isDisabled()).toBe(false)
    const voided = await db
      .selectFrom('purchase')
      .select(['customer_id', 'voided_at'])
      .where('external_id', '=', receiptId)
      .execute()
    expect(voided).toEqual([{ customer_id: first.id, voided_at: expect.any(Date) }])
  })

  it('finds a card typed in full width or as printed (IME on), and records the receipt for it', async () => {
    const member = await makeCustomer(db, { displayName: 'Mori Yui' })
    await scanCard(fullWidth(member.card))
    await expect.poll(() => page.locator('#member-name').textContent()).toBe('Mori Yui')
    const receiptId = `R-${randomUUID()}`
    await fillReceipt(receiptId, '3000')
    await page.getByRole('button', { name: /Record/ }).click()
    await expect.poll(() => page.locator('#result').textContent()).toContain('Recorded')
    const rows = await db
      .selectFrom('purchase')
      .select(['external_id', 'total'])
      .where('customer_id', '=', member.id)
      .execute()
    expect(rows).toEqual([{ external_id: receiptId, total: 3000 }])

    const other = await makeCustomer(db, { displayName: 'Abe Sho' })
    await scanCard(fullWidth(printedCardNumber(other.card)))
    await expect.poll(() => page.locator('#member-name').textContent()).toBe('Abe Sho')
    await scanCard(fullWidth(misread(other.card)))
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('(422): misread barcode, scan again')
  })

  it("looks the card up when the scanner's Enter only confirms the IME's full-width digits", async () => {
    const member = await makeCustomer(db, { displayName: 'Ueda Mei' })
    const typed = fullWidth(member.card)
    await page.locator('#barcode').focus()
    // As Chromium sees a scanner typing through a Japanese IME in full-width mode: the digits
    // are composed, and its Enter goes to the IME (keyCode 229), which confirms them; the page
    // gets no Enter of its own, so the form is never submitted by it.
    const cdp = await page.context().newCDPSession(page)
    await cdp.send('Input.imeSetComposition', {
      text: typed,
      selectionStart: typed.length,
      selectionEnd: typed.length,
    })
    await cdp.send('Input.dispatchKeyEvent', {
      type: 'rawKeyDown',
      key: 'Process',
      code: 'Enter',
      windowsVirtualKeyCode: 229,
      nativeVirtualKeyCode: 229,
    })
    await cdp.send('Input.insertText', { text: typed })
    await cdp.send('Input.dispatchKeyEvent', {
      type: 'keyUp',
      key: 'Enter',
      code: 'Enter',
      windowsVirtualKeyCode: 13,
      nativeVirtualKeyCode: 13,
    })
    await cdp.detach()
    await expect.poll(() => page.locator('#member-name').textContent()).toBe('Ueda Mei')
    expect(await page.locator('#barcode').inputValue()).toBe('')
  })

  it("looks a member up by a coupon: that coupon alone, no points, and never the member's card, name or balance", async () => {
    const member = await makeCustomer(db, { displayName: 'Kudo Rin', points: 300 })
    const coupon = await makeCoupon(db, member.id)
    const kept = await makeCoupon(db, member.id)
    const couponRow = (code: string) =>
      db
        .selectFrom('coupon')
        .select('used_purchase_id')
        .where('code', '=', code)
        .executeTakeFirstOrThrow()
    const purchases = () =>
      db
        .selectFrom('purchase')
        .select(['id', 'external_id', 'total', 'points_used'])
        .where('customer_id', '=', member.id)
        .execute()
    const answers: string[] = []
    const listen = async (res: PageResponse) => {
      if (res.url().endsWith('/staff/scan') && res.request().method() === 'POST') {
        answers.push(await res.text())
      }
    }
    page.on('response', listen)
    try {
      await scanCard(coupon.toLowerCase())
      // A coupon is no proof of who holds it: no name, no balance, a neutral label instead.
      await expect
        .poll(() => page.locator('#member-name').textContent())
        .toBe('クーポン利用者 / Coupon holder')
      expect(await page.locator('#member-points').textContent()).toBe('—')
      expect(await page.content()).not.toContain('Kudo Rin')
      // The coupon scanned is all that shows of the member's coupons; the receipt uses it, with
      // no points and no other coupon to choose, and the page says to scan the member card.
      expect(await page.locator('#member-coupons').textContent()).toContain(coupon)
      expect(await page.content()).not.toContain(kept)
      const select = page.getByLabel(/Coupon/)
      expect(await select.inputValue()).toBe(coupon)
      expect(await select.locator('option').count()).toBe(1)
      expect(await select.isDisabled()).toBe(true)
      expect(await page.getByLabel(/Points to use/).isDisabled()).toBe(true)
      expect(await page.locator('#coupon-scan').textContent()).toContain('Scan the member card')
      expect(await page.locator('#coupon-scan').isVisible()).toBe(true)

      // Points forced in anyway (the field enabled by hand) are refused by the API: 403.
      await page.getByLabel(/Receipt id/).fill(`R-${randomUUID()}`)
      await page.getByLabel(/Total/).fill('1000')
      await page
        .getByLabel(/Points to use/)
        .evaluate((el: { disabled: boolean; value: string }) => {
          el.disabled = false
          el.value = '100'
        })
      await page.getByRole('button', { name: /Record/ }).click()
      await expect.poll(() => page.getByRole('alert').textContent()).toContain('(403)')
      expect(await page.getByRole('alert').textContent()).toContain('scan the member card')
      expect(await purchases()).toEqual([])

      // Recorded, the receipt goes to the coupon and uses it; nothing is left to record against.
      await scanCard(coupon)
      await expect.poll(() => page.getByLabel(/Points to use/).isDisabled()).toBe(true)
      const receiptId = `R-${randomUUID()}`
      await fillReceipt(receiptId, '3000')
      await page.getByRole('button', { name: /Record/ }).click()
      await expect.poll(() => page.locator('#result').textContent()).toContain('3,000円')
      expect(await page.locator('#result').textContent()).toContain(`coupon ${coupon}`)
      // The balance after the sale (330 pt) is the member's: not shown for a coupon.
      expect(await page.locator('#result').textContent()).not.toContain('330 pt')
      expect(await page.locator('#result').textContent()).not.toContain('New balance')
      expect(await page.content()).not.toContain('Kudo Rin')
      expect(await page.locator('#alert').textContent()).toBe('')
      await expect.poll(() => page.locator('#receipt-form').isHidden()).toBe(true)
      const rows = await purchases()
      expect(rows.map((r) => [r.external_id, r.total, r.points_used])).toEqual([
        [receiptId, 3000, 0],
      ])
      expect((await couponRow(coupon)).used_purchase_id).toBe(rows[0]?.id)
      expect((await couponRow(kept)).used_purchase_id).toBeNull()
      // Nothing the page was told names the member card or the other coupon.
      expect(answers.length).toBeGreaterThanOrEqual(3)
      for (const answer of answers) {
        expect(answer).not.toContain(member.card)
        expect(answer).not.toContain(kept)
        expect(answer).not.toContain('Kudo Rin')
        expect(JSON.parse(answer).customer?.points ?? null).toBeNull()
      }
    } finally {
      page.off('response', listen)
    }

    // The member card shows everything again, and may use points and any coupon.
    await scanCard(member.card)
    await expect.poll(() => page.getByLabel(/Points to use/).isDisabled()).toBe(false)
    expect(await page.locator('#member-name').textContent()).toBe('Kudo Rin')
    expect(await page.locator('#member-points').textContent()).toBe('330 pt')
    expect(await page.getByLabel(/Coupon/).isDisabled()).toBe(false)
    expect(await page.locator('#member-coupons').textContent()).toContain(kept)
    expect(await page.locator('#coupon-scan').isHidden()).toBe(true)
  })

  it('refuses points above the total with the reason, and voids the receipt just recorded', async () => {
    const member = await makeCustomer(db, { displayName: 'Mori Aoi', points: 10_000 })
    const purchases = () =>
      db
        .selectFrom('purchase')
        .select(['external_id', 'total', 'voided_at'])
        .where('customer_id', '=', member.id)
        .execute()
    const points = () => pointsOf(db, member.id)
    await scanMember(member.card, 'Mori Aoi')

    // 5000 points typed for a 500 yen sale: within the balance, refused by the server.
    const receiptId = `R-${randomUUID()}`
    await fillReceipt(receiptId, '500')
    await page.getByLabel(/Points to use/).fill('5000')
    await page.getByRole('button', { name: /Record/ }).click()
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('(400)')
    expect(await page.getByRole('alert').textContent()).toContain(
      'receipt.pointsUsed: is more than the total (500)',
    )
    expect(await purchases()).toEqual([])

    // A total typed with an extra zero is recorded; staff take it back from the page.
    await page.getByLabel(/Points to use/).fill('0')
    await page.getByLabel(/Total/).fill('50000')
    await page.getByRole('button', { name: /Record/ }).click()
    const status = page.getByRole('status')
    await expect.poll(() => status.textContent()).toContain('+500 pt')
    expect(await points()).toBe(10_500)
    const dialogs: string[] = []
    page.once('dialog', async (dialog) => {
      dialogs.push(dialog.message())
      await dialog.accept()
    })
    await page.getByRole('button', { name: /Void this receipt/ }).click()
    await expect.poll(() => status.textContent()).toContain(`Voided: ${receiptId}`)
    expect(dialogs).toEqual([expect.stringContaining(receiptId)])
    expect(await status.textContent()).toContain('earned taken back 500 pt')
    expect(await page.getByRole('button', { name: /Void this receipt/ }).count()).toBe(0)
    expect(await purchases()).toEqual([
      { external_id: receiptId, total: 50_000, voided_at: expect.any(Date) },
    ])
    expect(await points()).toBe(10_000)
    // The member on screen shows the balance after the void.
    await expect.poll(() => page.locator('#member-points').textContent()).toBe('10,000 pt')
    expect(await page.locator('#alert').textContent()).toBe('')
  })

  it('puts no card number in a URL when a card is scanned before scan.js has run', async () => {
    const member = await makeCustomer(db, { displayName: 'Iwata Ko' })
    let release = () => {}
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    await page.route('**/staff/scan.js', async (route) => {
      await held
      await route.fallback()
    })
    const requested: string[] = []
    const listen = (req: PageRequest) => requested.push(req.url())
    page.on('request', listen)
    try {
      await page.goto(`${k.baseUrl}/staff/scan`, { waitUntil: 'commit' })
      await page.locator('#barcode').waitFor({ state: 'attached' })
      // A wedge scanner types where the focus is, page ready or not.
      await page.keyboard.type(member.card)
      await page.keyboard.press('Enter')
      release()
      await page.waitForLoadState('load')
      // scan.js, run, puts the focus in the card field for the scanner.
      await page.locator('#barcode:focus').waitFor()
    } finally {
      release()
      page.off('request', listen)
      await page.unroute('**/staff/scan.js')
    }
    expect(page.url()).toBe(`${k.baseUrl}/staff/scan`)
    expect(requested.filter((url) => url.includes(member.card))).toEqual([])
    await scanMember(member.card, 'Iwata Ko')
  })

  it('logs out: the session cookie is gone and the login form is back', async () => {
    await page.getByRole('button', { name: /Log out/ }).click()
    await page.getByRole('heading', { name: /Staff login/ }).waitFor()
    expect(await page.context().cookies()).toEqual([])
  })
})
