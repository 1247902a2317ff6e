import type { Browser } from 'playwright-core'
import { beforeAll, describe, expect, it } from 'vitest'
import type { Kizuna } from '../../src/main/runtime.ts'
import { eventually } from '../support/wait.ts'
import { useFirstRun } from './first-run.ts'

const run = useFirstRun()
let k: Kizuna
let browser: Browser
beforeAll(() => {
  ;({ k, browser } = run)
})

describe('first run on PORT=0: the /sandbox page', () => {
  it('shows the welcome member card with a barcode image that loads', async () => {
    const sandbox = k.sandbox!
    const user = sandbox.users.create({ displayName: 'Card Tester' })
    await sandbox.users.follow(user.userId)
    await eventually(() => expect(sandbox.inbox(user.userId)).toHaveLength(1))
    const page = await browser.newPage()
    await page.goto(`${k.baseUrl}/sandbox/`)
    const barcode = page.locator('.fx-hero img')
    await barcode.waitFor()
    await expect
      .poll(() =>
        barcode.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth),
      )
      .toBeGreaterThan(0)
    expect(new URL((await barcode.getAttribute('src'))!).port).toBe(String(k.port))
    await page.close()
  })
})

describe('first run: the /sandbox page shows replies as they come', () => {
  it('sends 会員証 from the page and shows the member card without a reload', async () => {
    const sandbox = k.sandbox!
    const user = sandbox.users.create({ displayName: 'Live Tester' })
    await sandbox.users.follow(user.userId)
    await eventually(() => expect(sandbox.inbox(user.userId)).toHaveLength(1))
    const page = await browser.newPage()
    page.setDefaultTimeout(10_000)
    const failed: string[] = []
    page.on('response', (r) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`)
    })
    await page.goto(`${k.baseUrl}/sandbox/`)
    const section = page.locator(`section[data-user="${user.userId}"]`)
    await section.locator('.fx-bubble').first().waitFor()

    await page.evaluate(() => Object.assign(globalThis, { samePage: true }))
    // The page posts with fetch and stays; the reply comes over its live stream.
    await section.locator('input[name=text]').fill('会員証')
    await section.getByRole('button', { name: 'Send text' }).click()
    await eventually(() => expect(sandbox.inbox(user.userId)).toHaveLength(2))
    await section.locator('.fx-bubble').nth(1).waitFor()
    expect(await page.evaluate(() => 'samePage' in globalThis)).toBe(true)
    expect(failed).toEqual([])
    await page.close()
    // Chromium asks for one on every page (Playwright doesn't report that request).
    expect((await fetch(`${k.baseUrl}/favicon.ico`)).status).toBe(204)
  })
})

describe('first run: account link from the /sandbox page', () => {
  it('goes from the "link" tap through the mailbox code to a linked account', async () => {
    const sandbox = k.sandbox!
    const page = await browser.newPage()
    page.setDefaultTimeout(10_000)

    const user = sandbox.users.create({ displayName: 'Link Tester' })
    await sandbox.users.follow(user.userId)
    await sandbox.users.postback(user.userId, 'action=link')
    const entry = await eventually(() => {
      const found = sandbox.inbox(user.userId).find((e) => e.message.type === 'template')
      expect(found).toBeDefined()
      return found!
    })
    const template = entry.message.template as { actions: { uri: string }[] }
    const link = new URL(template.actions[0]!.uri)

    // The link page, as the shopper's browser opens it from the button.
    await page.goto(link.href)
    await page.locator('input[name=email]').fill('link.tester@example.com')
    await page.locator('button').first().click()
    await page.locator('input[name=code]').waitFor()

    const mail = await browser.newPage()
    await mail.goto(`${k.baseUrl}/sandbox/mail`)
    const code = /\b(\d{6})\b/.exec((await mail.locator('pre').first().textContent()) ?? '')?.[1]
    expect(code).toMatch(/^\d{6}$/)

    await page.locator('input[name=code]').fill(code!)
    await page.locator('button').first().click()
    // LINE's dialog would confirm the link and return to the chat: the sandbox does the same.
    await page.waitForURL((url) => url.pathname === '/sandbox/')

    await eventually(async () => {
      const row = await k.deps.db
        .selectFrom('identity as i')
        .innerJoin('line_user as l', 'l.customer_id', 'i.customer_id')
        .select(['i.value'])
        .where('l.line_uid', '=', user.userId)
        .where('i.kind', '=', 'email')
        .executeTakeFirst()
      expect(row).toEqual({ value: 'link.tester@example.com' })
    })
    const events = sandbox.webhookDeliveries.flatMap(
      (d) => (d.body as { events: { type: string }[] }).events,
    )
    expect(events.filter((e) => e.type === 'accountLink')).toMatchObject([
      { source: { userId: user.userId }, link: { result: 'ok' } },
    ])
  }, 60_000)
})
