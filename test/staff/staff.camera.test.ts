import { randomUUID } from 'node:crypto'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/platform/db.ts'
import { makeCustomer, makeStoreKey } from '../purchases/fixtures.ts'
import { type FakeCamera, fakeCamera, launchChromium } from '../support/browser.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'

let k: TestKizuna
let db: Database
let browser: Browser
let key: string
beforeAll(async () => {
  k = await startTestKizuna()
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
  browser = await launchChromium()
})
afterAll(async () => {
  await browser?.close()
  await k?.stopAll()
})

/** A logged-in scan page in a fresh browser whose camera shows `camera`. */
async function scanPageWith(camera: FakeCamera): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } })
  await fakeCamera(context, camera)
  const page = await context.newPage()
  page.setDefaultTimeout(10_000)
  await page.goto(`${k.baseUrl}/staff/scan`)
  await page.locator('#key').fill(key)
  await page.getByRole('button', { name: /Log in/ }).click()
  await page.getByRole('heading', { name: /Member scan/ }).waitFor()
  return page
}

/** Whether the page still holds a live camera track (the camera light is on). */
const cameraOn = (page: Page) =>
  page.evaluate(`window.fakeCamera.streams.some((s) =>
    s.getTracks().some((t) => t.readyState === 'live'))`)

describe('GET /staff/scan with a camera (BarcodeDetector) in Chromium', () => {
  it('reads a member card with the camera, then records a receipt for that member', async () => {
    const member = await makeCustomer(db, { points: 50, displayName: 'Mori Yui' })
    const page = await scanPageWith({ barcode: member.card })
    const camera = page.getByRole('button', { name: /Use camera/ })
    await camera.click()

    await expect.poll(() => page.locator('#member-name').textContent()).toBe('Mori Yui')
    expect(await page.locator('#member-points').textContent()).toBe('50 pt')
    // It asked for the back camera and EAN-13, read a few frames, then let the camera go.
    expect(await page.evaluate('window.fakeCamera.constraints')).toEqual([
      { video: { facingMode: 'environment' } },
    ])
    expect(await page.evaluate('window.fakeCamera.formats')).toEqual(['ean_13'])
    expect(await page.evaluate('window.fakeCamera.frames')).toBeGreaterThanOrEqual(3)
    expect(await cameraOn(page)).toBe(false)
    expect(await page.locator('#camera-view').isHidden()).toBe(true)
    expect(await camera.getAttribute('aria-pressed')).toBe('false')
    // The next card can come from the scanner without touching the screen.
    expect(await page.evaluate('document.activeElement?.id')).toBe('barcode')

    const receiptId = `R-${randomUUID()}`
    await page.getByLabel(/Receipt id/).fill(receiptId)
    await page.getByLabel(/Total/).fill('3000')
    await page.getByRole('button', { name: /Record/ }).click()
    await expect.poll(() => page.getByRole('status').textContent()).toContain('+30 pt')
    const purchases = await db
      .selectFrom('purchase')
      .select(['external_id', 'total'])
      .where('customer_id', '=', member.id)
      .execute()
    expect(purchases).toEqual([{ external_id: receiptId, total: 3000 }])
    await page.context().close()
  })

  it('says so when the camera is refused, and the scanner still works', async () => {
    const member = await makeCustomer(db, { displayName: 'Abe Sora' })
    const page = await scanPageWith({ refuse: true })
    const camera = page.getByRole('button', { name: /Use camera/ })
    await camera.click()
    const alert = page.getByRole('alert')
    await expect.poll(() => alert.textContent()).toContain('Camera not allowed')
    expect(await alert.textContent()).toContain('allow the camera for this page')
    expect(await page.locator('#camera-view').isHidden()).toBe(true)
    expect(await camera.getAttribute('aria-pressed')).toBe('false')

    // A keyboard-wedge scanner types where the focus is: the card field, not the camera button.
    await page.keyboard.type(member.card)
    await page.keyboard.press('Enter')
    await expect.poll(() => page.locator('#member-name').textContent()).toBe('Abe Sora')
    expect(await page.locator('#alert').textContent()).toBe('')
    expect(await page.evaluate('window.fakeCamera.constraints.length')).toBe(1)
    await page.context().close()
  })

  it('turns the camera on once for a double tap, and off when pressed again', async () => {
    const page = await scanPageWith({})
    const camera = page.getByRole('button', { name: /Use camera/ })
    // The second tap comes while the first still waits for the camera: a second camera opened
    // then would stay on after the button turned the first one off.
    await camera.evaluate((button: { click(): void }) => {
      button.click()
      button.click()
    })
    await expect.poll(() => camera.getAttribute('aria-pressed')).toBe('true')
    expect(await page.locator('#camera-view').isVisible()).toBe(true)
    expect(await page.evaluate('window.fakeCamera.constraints.length')).toBe(1)
    await camera.click()
    await expect.poll(() => camera.getAttribute('aria-pressed')).toBe('false')
    expect(await cameraOn(page)).toBe(false)
    expect(await page.locator('#camera-view').isHidden()).toBe(true)
    expect(await page.evaluate('document.activeElement?.id')).toBe('barcode')
    await page.context().close()
  })
})
