import type { Page } from 'playwright-core'
import { beforeEach, describe, expect, it } from 'vitest'
import type { SandboxPlatform } from '../../src/sandbox/platform.ts'
import { channelAccessToken, createRichMenu } from './fixtures.ts'
import { useSandboxPage } from './page-fixture.ts'

const sandbox = useSandboxPage({ width: 1000, height: 1200 })
let platform: SandboxPlatform
let baseUrl: string
let page: Page
let dialogs: string[]
beforeEach(() => {
  ;({ platform, baseUrl, page, dialogs } = sandbox)
})

const auth = { authorization: `Bearer ${channelAccessToken}` }

/**
 * Creates a menu through the stand-in's API (validated against LINE's spec), with a flat
 * 2500×843 image (LINE takes no smaller): the areas over it are what is tested.
 */
function createMenu(chatBarText: string, areas: unknown[], name = chatBarText) {
  return createRichMenu(platform, {
    size: { width: 2500, height: 843 },
    selected: true,
    name,
    chatBarText,
    areas,
  })
}

async function api(path: string, body?: unknown, method = 'POST', status = 200) {
  const res = await platform.apiApp.request(path, {
    method,
    headers: { ...auth, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  expect(res.status).toBe(status)
}

const area = (x: number, action: Record<string, unknown>) => ({
  bounds: { x, y: 0, width: 1250, height: 843 },
  action,
})

/** The postback events the page sent for taps, oldest first. */
function postbacks() {
  return platform.webhookDeliveries
    .flatMap((d) => (d.body as { events: Record<string, unknown>[] }).events)
    .filter((e) => e.type === 'postback')
}

describe('rich menus on the /sandbox page in Chromium', () => {
  it("draws a user's linked menu over its image and sends a tapped area as a postback", async () => {
    const main = await createMenu('Menu', [
      area(0, { type: 'postback', label: 'Card', data: `action=card&x="');alert(1)//` }),
      area(1250, {
        type: 'richmenuswitch',
        label: 'More',
        richMenuAliasId: 'more',
        data: 'tab=more',
      }),
    ])
    const more = await createMenu('More', [
      area(0, { type: 'uri', label: 'Shop', uri: 'https://shop.example/' }),
      area(1250, {
        type: 'richmenuswitch',
        label: 'Back',
        richMenuAliasId: 'main',
        data: 'tab=main',
      }),
    ])
    await api('/v2/bot/richmenu/alias', { richMenuAliasId: 'main', richMenuId: main })
    await api('/v2/bot/richmenu/alias', { richMenuAliasId: 'more', richMenuId: more })
    const user = platform.users.create({ displayName: 'Rin' })
    await platform.users.follow(user.userId)
    await api(`/v2/bot/user/${user.userId}/richmenu/${main}`)

    await page.goto(`${baseUrl}/sandbox/`)
    const board = page.locator(`section[data-user="${user.userId}"] .richmenu`)
    expect(await board.getAttribute('data-richmenu')).toBe(main)
    expect(await board.locator('summary').textContent()).toBe('Menu')
    // The image loads from the page, and each area sits where its bounds say (in % of the menu).
    expect(
      await board
        .locator('img')
        .evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth),
    ).toBe(2500)
    const boardBox = await board.locator('.richmenu-board').boundingBox()
    const moreBox = await board.getByRole('button', { name: 'More' }).boundingBox()
    expect(boardBox && moreBox).toBeTruthy()
    if (!boardBox || !moreBox) return
    expect(moreBox.x - boardBox.x).toBeCloseTo(boardBox.width / 2, 0)
    expect(moreBox.width).toBeCloseTo(boardBox.width / 2, 0)
    expect(boardBox.width / boardBox.height).toBeCloseTo(2500 / 843, 1)

    await board.getByRole('button', { name: 'Card' }).click()
    await expect.poll(() => postbacks().length).toBe(1)
    expect(postbacks()[0]).toMatchObject({
      source: { userId: user.userId },
      postback: { data: `action=card&x="');alert(1)//` },
    })

    // A richmenuswitch tap: LINE shows the alias's menu and tells the bot which one.
    await page.waitForURL(`${baseUrl}/sandbox/`)
    await page
      .locator(`section[data-user="${user.userId}"] .richmenu`)
      .getByRole('button', { name: 'More' })
      .click()
    await expect.poll(() => postbacks().length).toBe(2)
    expect(postbacks()[1]).toMatchObject({
      postback: { data: 'tab=more', params: { newRichMenuAliasId: 'more', status: 'SUCCESS' } },
    })
    await expect
      .poll(() =>
        page.locator(`section[data-user="${user.userId}"] .richmenu`).getAttribute('data-richmenu'),
      )
      .toBe(more)
    const shop = page.locator(`section[data-user="${user.userId}"] .richmenu a`)
    expect(await shop.getAttribute('href')).toBe('https://shop.example/')
    expect(dialogs).toEqual([])
  })

  it('shows the default menu to friends without their own, and none after a block', async () => {
    const menu = await createMenu('Tap here', [
      area(0, { type: 'postback', label: 'Help', data: 'action=help' }),
    ])
    await api(`/v2/bot/user/all/richmenu/${menu}`)
    const user = platform.users.create({ displayName: 'Sora' })
    await platform.users.follow(user.userId)
    const other = platform.users.create({ displayName: 'Kai' })
    await platform.users.follow(other.userId)
    await platform.users.block(other.userId)

    await page.goto(`${baseUrl}/sandbox/`)
    expect(
      await page
        .locator(`section[data-user="${user.userId}"] .richmenu`)
        .getAttribute('data-richmenu'),
    ).toBe(menu)
    expect(await page.locator(`section[data-user="${other.userId}"] .richmenu`).count()).toBe(0)
  })

  it('answers an unknown alias with RICHMENU_ALIAS_ID_NOTFOUND and keeps the menu', async () => {
    const menu = await createMenu('Menu', [
      area(0, { type: 'richmenuswitch', label: 'Gone', richMenuAliasId: 'gone', data: 'tab=gone' }),
    ])
    const user = platform.users.create({ displayName: 'Nao' })
    await platform.users.follow(user.userId)
    await api(`/v2/bot/user/${user.userId}/richmenu/${menu}`)

    await page.goto(`${baseUrl}/sandbox/`)
    await page.getByRole('button', { name: 'Gone' }).click()
    await expect.poll(() => postbacks().length).toBe(1)
    expect(postbacks()[0]).toMatchObject({
      postback: {
        data: 'tab=gone',
        params: { newRichMenuAliasId: 'gone', status: 'RICHMENU_ALIAS_ID_NOTFOUND' },
      },
    })
    expect(platform.richMenuOf(user.userId)).toBe(menu)
  })

  it('never makes a uri area with a script scheme a live link', async () => {
    const evil = area(0, { type: 'uri', label: 'Evil', uri: 'javascript:alert(1)' })
    const menu = await createMenu('Menu', [
      area(0, { type: 'uri', label: 'Evil', uri: 'https://placeholder.example/' }),
      area(1250, { type: 'uri', label: 'Shop', uri: 'https://shop.example/' }),
    ])
    // LINE refuses such a uri (so does the stand-in); the page must stay safe if one slips in.
    const refused = await platform.apiApp.request('/v2/bot/richmenu/validate', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        size: { width: 2500, height: 843 },
        selected: true,
        name: 'Menu',
        chatBarText: 'Menu',
        areas: [evil],
      }),
    })
    expect(refused.status).toBe(400)
    const stored = platform.context.state.richMenus.get(menu)!
    const areas = stored.request.areas as unknown[]
    stored.request = { ...stored.request, areas: [evil, areas[1]] }
    const user = platform.users.create({ displayName: 'Mio' })
    await platform.users.follow(user.userId)
    await api(`/v2/bot/user/${user.userId}/richmenu/${menu}`)

    await page.goto(`${baseUrl}/sandbox/`)
    const board = page.locator(`section[data-user="${user.userId}"] .richmenu`)
    expect(await board.locator('a[href^="javascript" i]').count()).toBe(0)
    await board.getByText('Evil').click()
    await page.waitForTimeout(200)
    expect(dialogs).toEqual([])
    expect(await board.locator('a').getAttribute('href')).toBe('https://shop.example/')
  })

  it("redraws a user's menu as Kizuna links, unlinks or changes the default, and names it", async () => {
    const welcome = await createMenu(
      'Welcome',
      [area(0, { type: 'postback', data: 'a=1' })],
      'new-friend',
    )
    const linked = await createMenu('Menu', [area(0, { type: 'postback', data: 'a=2' })], 'linked')
    await api(`/v2/bot/user/all/richmenu/${welcome}`)
    const user = platform.users.create({ displayName: 'Aki' })
    await platform.users.follow(user.userId)
    await page.goto(`${baseUrl}/sandbox/`)
    await page.evaluate(() => Object.assign(globalThis, { samePage: true }))
    const section = page.locator(`section[data-user="${user.userId}"]`)
    const shown = async () => {
      const board = section.locator('.richmenu')
      const meta = (await section.locator('.meta').first().textContent())?.replace(/\s+/g, ' ')
      const id = (await board.count()) ? await board.getAttribute('data-richmenu') : null
      return { id, meta }
    }
    // Named as LINE's API returns it (name, chat bar text), not by its opaque id.
    expect(await shown()).toEqual({
      id: welcome,
      meta: expect.stringContaining('rich menu new-friend (default)'),
    })
    expect((await shown()).meta).not.toContain('richmenu-')
    expect(await section.locator('.richmenu summary').textContent()).toBe('Welcome')

    await api(`/v2/bot/user/${user.userId}/richmenu/${linked}`)
    await expect
      .poll(shown)
      .toEqual({ id: linked, meta: expect.stringContaining('rich menu linked') })
    expect(await section.locator('.richmenu summary').textContent()).toBe('Menu')
    await api(`/v2/bot/user/${user.userId}/richmenu`, undefined, 'DELETE')
    await expect.poll(shown).toEqual({ id: welcome, meta: expect.stringContaining('new-friend') })
    await api('/v2/bot/user/all/richmenu', undefined, 'DELETE')
    await expect.poll(shown).toEqual({ id: null, meta: expect.not.stringContaining('rich menu') })
    await api(
      `/v2/bot/richmenu/bulk/link`,
      { richMenuId: linked, userIds: [user.userId] },
      'POST',
      202,
    )
    await expect.poll(shown).toEqual({ id: linked, meta: expect.stringContaining('linked') })
    // A block takes the menu away (LINE shows none to someone who blocked the account).
    await platform.users.block(user.userId)
    await expect.poll(shown).toEqual({ id: null, meta: expect.stringContaining('blocked') })
    expect(await page.evaluate(() => 'samePage' in globalThis)).toBe(true)
    expect(dialogs).toEqual([])
  })
})
