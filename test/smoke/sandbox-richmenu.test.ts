import { readFileSync } from 'node:fs'
import type { Browser, Page } from 'playwright-core'
import { beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { findPostbackRoute, parsePostbackData } from '../../src/conversation/routes.ts'
import type { Kizuna } from '../../src/main/runtime.ts'
import { listMenuFolders } from '../../src/richmenu/richmenu-files.ts'
import { eventually } from '../support/wait.ts'
import { useFirstRun } from './first-run.ts'

type Area = {
  bounds: { x: number; y: number; width: number; height: number }
  action: Record<string, string>
}
const menuJson = (name: string) =>
  JSON.parse(
    readFileSync(new URL(`../../richmenus/${name}/menu.json`, import.meta.url), 'utf8'),
  ) as {
    richMenu: { size: { width: number; height: number }; areas: Area[] }
  }

const run = useFirstRun()
let k: Kizuna
let browser: Browser
beforeAll(() => {
  ;({ k, browser } = run)
})

async function menuOf(page: Page, userId: string) {
  const board = page.locator(`section[data-user="${userId}"] .richmenu`)
  await board.waitFor()
  return board
}

describe('the shipped richmenus/', () => {
  it('send only postbacks Kizuna answers (tabs send action=tab, which LINE handles)', () => {
    for (const name of listMenuFolders()) {
      for (const { action } of menuJson(name).richMenu.areas) {
        if (action.type === 'uri') continue
        const params = parsePostbackData(action.data ?? '')
        if (action.type === 'richmenuswitch') expect(params.get('action')).toBe('tab')
        else
          expect(findPostbackRoute(params.get('action')), `${name}: ${action.data}`).toBeDefined()
      }
    }
  })
})

describe('first run: the shipped rich menus on the /sandbox page', () => {
  it('draws new-friend, answers every tap, and moves a member to member with working tabs', async () => {
    const sandbox = k.sandbox!
    const page = await browser.newPage({ viewport: { width: 1000, height: 1400 } })
    page.setDefaultTimeout(15_000)
    const failed: string[] = []
    page.on('response', (r) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`)
    })
    await page.goto(`${k.baseUrl}/sandbox/`)
    await page.locator('input[name=displayName]').fill('Menu Tester')
    await page.getByRole('button', { name: 'Create user and add friend' }).click()
    const user = await eventually(() => {
      const created = sandbox.users.list().find((u) => u.displayName === 'Menu Tester')
      expect(created).toBeDefined()
      return created!
    })
    await eventually(() => expect(sandbox.inbox(user.userId)).toHaveLength(1))
    // The new user's section and their menu come over the page's live stream.
    await page.locator(`section[data-user="${user.userId}"] .richmenu`).waitFor()
    const board = await menuOf(page, user.userId)
    const nf = menuJson('new-friend').richMenu
    expect(
      await board
        .locator('img')
        .evaluate((i) => (i as unknown as { naturalWidth: number }).naturalWidth),
    ).toBe(nf.size.width)
    const box = (await board.locator('.richmenu-board').boundingBox())!
    for (const a of nf.areas) {
      const b = (await board
        .getByRole('button', { name: a.action.label, exact: true })
        .boundingBox())!
      expect((b.x - box.x) / box.width).toBeCloseTo(a.bounds.x / nf.size.width, 2)
      expect((b.y - box.y) / box.height).toBeCloseTo(a.bounds.y / nf.size.height, 2)
      expect(b.width / box.width).toBeCloseTo(a.bounds.width / nf.size.width, 2)
    }
    const tap = async (label: string) => {
      const before = sandbox.inbox(user.userId).length
      const b = await menuOf(page, user.userId)
      await b.getByRole('button', { name: label, exact: true }).click()
      await eventually(() => expect(sandbox.inbox(user.userId).length).toBeGreaterThan(before))
      return sandbox.inbox(user.userId).slice(before)
    }
    const text = (replies: { message: unknown }[]) => JSON.stringify(replies.map((r) => r.message))
    expect(text(await tap('Member card'))).toContain('会員証')
    expect(text(await tap('Link account'))).toContain('Link your online shop account')
    expect(text(await tap('Help'))).toContain('action=optin&category=marketing')
    // A purchase at the register makes the friend a member: their menu moves to `member`.
    const store = await k.deps.db
      .insertInto('store')
      .values({ code: 'S001', name: 'Shibuya' })
      .returning('id')
      .executeTakeFirstOrThrow()
    const { key } = await createApiKey(k.deps.db, { storeId: store.id, scopes: ['pos'] })
    const card = await k.deps.db
      .selectFrom('identity')
      .innerJoin('line_user', 'line_user.customer_id', 'identity.customer_id')
      .select('identity.value')
      .where('line_user.line_uid', '=', user.userId)
      .where('identity.kind', '=', 'member_card')
      .executeTakeFirstOrThrow()
    const scan = await fetch(`${k.baseUrl}/api/pos/scans`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({
        barcode: card.value,
        receipt: {
          id: 'R1',
          purchasedAt: new Date().toISOString(),
          lines: [{ sku: 'A', quantity: 1, unitPrice: 1000 }],
          total: 1000,
        },
      }),
    })
    expect(scan.status).toBe(200)
    const memberId = await eventually(async () => {
      const row = await k.deps.db
        .selectFrom('richmenu_version')
        .select('line_rich_menu_id')
        .where('name', '=', 'member')
        .where('retired_at', 'is', null)
        .executeTakeFirstOrThrow()
      expect(sandbox.context.state.users.get(user.userId)?.richMenuId).toBe(row.line_rich_menu_id)
      return row.line_rich_menu_id
    })
    // The open page follows: the member menu replaces new-friend's without a reload.
    await page.evaluate(() => Object.assign(globalThis, { samePage: true }))
    await expect
      .poll(async () => (await menuOf(page, user.userId)).getAttribute('data-richmenu'))
      .toBe(memberId)
    expect(text(await tap('Member card'))).toContain('会員証')
    // Tabs
    await (await menuOf(page, user.userId))
      .getByRole('button', { name: 'More', exact: true })
      .click()
    const moreId = await eventually(() => {
      const id = sandbox.context.state.users.get(user.userId)?.richMenuId
      expect(id).not.toBe(memberId)
      return id
    })
    await expect
      .poll(async () => (await menuOf(page, user.userId)).getAttribute('data-richmenu'))
      .toBe(moreId)
    expect(text(await tap('Stop offers'))).toContain('no longer receive offers')
    expect(text(await tap('Get offers'))).toContain('receive offers and news on LINE again')
    await (await menuOf(page, user.userId))
      .getByRole('button', { name: 'Home', exact: true })
      .click()
    await eventually(() =>
      expect(sandbox.context.state.users.get(user.userId)?.richMenuId).toBe(memberId),
    )
    expect(await page.evaluate(() => 'samePage' in globalThis)).toBe(true)
    expect(failed).toEqual([])
  }, 90_000)
})
