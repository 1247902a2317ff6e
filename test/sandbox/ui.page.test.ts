import type { Page } from 'playwright-core'
import { beforeEach, describe, expect, it } from 'vitest'
import type { SandboxPlatform } from '../../src/sandbox/platform.ts'
import { channelAccessToken, createRichMenu, richMenuRequest } from './fixtures.ts'
import { useSandboxPage } from './page-fixture.ts'

const sandbox = useSandboxPage()
let platform: SandboxPlatform
let baseUrl: string
let page: Page
let dialogs: string[]
beforeEach(() => {
  ;({ platform, baseUrl, page, dialogs } = sandbox)
})

async function push(to: string, messages: unknown[]) {
  const res = await platform.apiApp.request('/v2/bot/message/push', {
    method: 'POST',
    headers: { authorization: `Bearer ${channelAccessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ to, messages }),
  })
  expect(res.status).toBe(200)
}

/** The postback and message events the page sent for taps, oldest first. */
function tapEvents() {
  return platform.webhookDeliveries
    .flatMap((d) => (d.body as { events: Record<string, unknown>[] }).events)
    .filter((e) => e.type === 'postback' || e.type === 'message')
}

/** A Flex message of one bubble whose body lists `contents`. */
const bubbleOf = (altText: string, contents: unknown[]) => ({
  type: 'flex',
  altText,
  contents: { type: 'bubble', body: { type: 'box', layout: 'vertical', contents } },
})

const CARD = {
  type: 'flex',
  altText: 'Member card',
  contents: {
    type: 'bubble',
    header: {
      type: 'box',
      layout: 'vertical',
      contents: [{ type: 'text', text: '<img src=x onerror=alert(1)>Yui' }],
    },
    body: {
      type: 'box',
      layout: 'vertical',
      contents: [{ type: 'text', text: '2900000000018', weight: 'bold' }],
    },
    footer: {
      type: 'box',
      layout: 'vertical',
      contents: [
        {
          type: 'button',
          style: 'primary',
          action: { type: 'postback', label: 'Show card', data: `action=card&x="');alert(2)//` },
        },
        { type: 'button', action: { type: 'message', label: 'Say hi', text: '会員証' } },
      ],
    },
  },
}

describe('the /sandbox page in Chromium', () => {
  it('draws Flex messages as LINE does and sends a tapped button as the user', async () => {
    const user = platform.users.create({ displayName: '<img src=x onerror=alert(3)>Ren' })
    await platform.users.follow(user.userId)
    await push(user.userId, [CARD])

    await page.goto(`${baseUrl}/sandbox/`)
    const bubble = page.locator('.fx-bubble')
    await expect.poll(() => bubble.count()).toBe(1)
    expect(await bubble.locator('.fx-header').textContent()).toBe('<img src=x onerror=alert(1)>Yui')
    expect(await bubble.locator('.fx-body').textContent()).toContain('2900000000018')
    expect(await page.locator('img[src=x]').count()).toBe(0)

    await bubble.getByText('Show card').click()
    await page.waitForURL(`${baseUrl}/sandbox/`)
    await expect.poll(() => tapEvents().length).toBe(1)
    expect(tapEvents()[0]).toMatchObject({
      type: 'postback',
      source: { userId: user.userId },
      postback: { data: `action=card&x="');alert(2)//` },
    })

    await page.locator('.fx-bubble').getByText('Say hi').click()
    await expect.poll(() => tapEvents().length).toBe(2)
    expect(tapEvents()[1]).toMatchObject({ type: 'message', message: { text: '会員証' } })
    expect(dialogs).toEqual([])
  })

  it('draws a buttons template with its link and postback actions', async () => {
    const user = platform.users.create({ displayName: 'Mio' })
    await platform.users.follow(user.userId)
    await push(user.userId, [
      {
        type: 'template',
        altText: 'Link your account',
        template: {
          type: 'buttons',
          text: 'Link your online shop account',
          actions: [
            { type: 'uri', label: 'Link account', uri: 'https://shop.example/link?linkToken=t1' },
            { type: 'postback', label: 'Not now', data: 'action=dismiss' },
          ],
        },
      },
    ])

    await page.goto(`${baseUrl}/sandbox/`)
    const link = page.getByRole('link', { name: 'Link account' })
    expect(await link.getAttribute('href')).toBe('https://shop.example/link?linkToken=t1')
    expect(await page.getByText('Link your online shop account', { exact: true }).isVisible()).toBe(
      true,
    )

    await page.getByRole('button', { name: 'Not now' }).click()
    await expect.poll(() => tapEvents().length).toBe(1)
    expect(tapEvents()[0]).toMatchObject({ postback: { data: 'action=dismiss' } })
  })

  it('shows a reply that arrives after the page loaded, without a reload', async () => {
    const user = platform.users.create({ displayName: 'Aoi' })
    await platform.users.follow(user.userId)
    await page.goto(`${baseUrl}/sandbox/`)
    const section = page.locator(`section[data-user="${user.userId}"]`)

    // Typed and sent through the page (which stays: it posts with fetch).
    await page.evaluate(() => Object.assign(globalThis, { samePage: true }))
    await section.locator('input[name=text]').fill('会員証')
    await section.getByRole('button', { name: 'Send text' }).click()
    await expect.poll(() => tapEvents().length).toBe(1)
    expect(tapEvents()).toMatchObject([{ type: 'message', message: { text: '会員証' } }])

    // Kizuna answers later, from its queue: the reply comes after the page was drawn.
    const { replyToken } = tapEvents()[0] as { replyToken: string }
    const res = await platform.apiApp.request('/v2/bot/message/reply', {
      method: 'POST',
      headers: {
        authorization: `Bearer ${channelAccessToken}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ replyToken, messages: [{ type: 'text', text: '<b>Here</b>' }, CARD] }),
    })
    expect(res.status).toBe(200)

    const bubble = section.locator('.fx-bubble')
    await bubble.waitFor()
    expect(await bubble.locator('.fx-header').textContent()).toBe('<img src=x onerror=alert(1)>Yui')
    expect(await section.locator('.msg-text').last().textContent()).toBe('<b>Here</b>')
    expect(await page.locator('img[src=x], b').count()).toBe(0)
    expect(await page.evaluate(() => 'samePage' in globalThis)).toBe(true)

    // Buttons in a message that arrived live tap like any other.
    await bubble.getByText('Show card').click()
    await expect.poll(() => tapEvents().length).toBe(2)
    expect(dialogs).toEqual([])
  })
})

describe("the user's own messages on the /sandbox page", () => {
  it('shows what the user sent right-aligned and live: text, postback displayText, message action', async () => {
    const user = platform.users.create({ displayName: 'Tomo' })
    await platform.users.follow(user.userId)
    const button = (label: string, action: Record<string, unknown>) => ({
      type: 'button',
      action: { label, ...action },
    })
    await push(user.userId, [
      bubbleOf('Menu', [
        button('Show card', { type: 'postback', data: 'action=card', displayText: 'Show my card' }),
        button('Quiet', { type: 'postback', data: 'action=quiet' }),
        button('Say hi', { type: 'message', text: '会員証' }),
      ]),
    ])
    await page.goto(`${baseUrl}/sandbox/`)
    await page.evaluate(() => Object.assign(globalThis, { samePage: true }))
    const section = page.locator(`section[data-user="${user.userId}"]`)
    const sent = section.locator('.chat .row-user')
    const texts = () => sent.locator('.msg').allTextContents()

    // Typed in another tab (or sent by a test): it shows here without a reload, as a reply does.
    await platform.users.sendText(user.userId, 'こんにちは')
    await expect.poll(texts).toEqual(['こんにちは'])
    expect(await page.evaluate(() => 'samePage' in globalThis)).toBe(true)

    // A postback shows its displayText, one without shows nothing, a message action its text.
    await section.locator('.fx-bubble').getByText('Show card').click()
    await expect.poll(texts).toEqual(['こんにちは', 'Show my card'])
    await section.locator('.fx-bubble').getByText('Quiet').click()
    await expect.poll(() => tapEvents().length).toBe(3)
    await section.locator('.fx-bubble').getByText('Say hi').click()
    await expect.poll(texts).toEqual(['こんにちは', 'Show my card', '会員証'])
    expect(tapEvents().map((e) => e.type)).toEqual(['message', 'postback', 'postback', 'message'])

    await platform.users.sendText(user.userId, '<img src=x onerror=alert(1)>')
    await expect.poll(() => sent.count()).toBe(4)
    expect(await sent.last().locator('.msg').textContent()).toBe('<img src=x onerror=alert(1)>')
    expect(await page.locator('img[src=x]').count()).toBe(0)
    expect(dialogs).toEqual([])

    // Right-aligned in the chat, the time on their left; the bot's bubble stays on the left.
    const chat = (await section.locator('.chat').boundingBox())!
    for (const row of await sent.all()) {
      const bubble = (await row.locator('.msg').boundingBox())!
      expect(bubble.x + bubble.width).toBeCloseTo(chat.x + chat.width - 8, 0)
      const time = (await row.locator('time').boundingBox())!
      expect(time.x + time.width).toBeLessThanOrEqual(bubble.x)
      expect(await row.locator('time').evaluate(contrast)).toBeGreaterThanOrEqual(4.5)
    }
    const card = (await section.locator('.fx-bubble').boundingBox())!
    expect(card.x).toBeCloseTo(chat.x + 8, 0)
  })
})

describe("the reader's place on the /sandbox page", () => {
  const scrollY = () => page.evaluate(() => (globalThis as unknown as { scrollY: number }).scrollY)
  const markPage = () => page.evaluate(() => Object.assign(globalThis, { samePage: true }))
  const samePage = () => page.evaluate(() => 'samePage' in globalThis)

  /** A friend with a long chat ending in a Flex message with quick replies, and a menu. */
  async function longChat(displayName: string) {
    const user = platform.users.create({ displayName })
    await platform.users.follow(user.userId)
    for (let i = 0; i < 8; i += 1) {
      await push(
        user.userId,
        Array.from({ length: 5 }, (_, j) => ({ type: 'text', text: `news ${i * 5 + j}` })),
      )
    }
    await push(user.userId, [
      {
        ...CARD,
        quickReply: {
          items: [{ type: 'action', action: { type: 'postback', label: 'Later', data: 'later' } }],
        },
      },
    ])
    return user
  }

  async function defaultMenu() {
    const richMenuId = await createRichMenu(platform, richMenuRequest)
    const set = await platform.apiApp.request(`/v2/bot/user/all/richmenu/${richMenuId}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${channelAccessToken}` },
    })
    expect(set.status).toBe(200)
  }

  it('stays where the reader is through taps, texts, blocks and a new user, with no reload', async () => {
    await defaultMenu()
    await longChat('Ao') // Nagi's section starts far down the page
    const user = await longChat('Nagi')
    await page.goto(`${baseUrl}/sandbox/`)
    await markPage()
    const section = page.locator(`section[data-user="${user.userId}"]`)
    const menu = section.locator('.richmenu')
    await menu.scrollIntoViewIfNeeded()
    const start = await scrollY()
    expect(start).toBeGreaterThan(1000)
    /** After an action: not back at the top, the menu still in view, the same page. */
    const inPlace = async () => {
      expect(await scrollY()).toBeGreaterThan(start - 100)
      const box = (await menu.boundingBox())!
      expect(box.y).toBeGreaterThanOrEqual(0)
      expect(box.y).toBeLessThan(900)
      expect(await samePage()).toBe(true)
    }
    const sent = section.locator('.chat .row-user .msg')

    await section.locator('.fx-bubble').getByText('Show card').click()
    await expect.poll(() => tapEvents().length).toBe(1)
    await inPlace()
    // The tap answered the message: its quick reply goes, without a reload.
    await expect.poll(() => section.locator('.qr-chip').count()).toBe(0)

    await section.locator('input[name=text]').fill('こんにちは')
    await section.getByRole('button', { name: 'Send text' }).click()
    await expect.poll(() => sent.allTextContents()).toEqual(['こんにちは'])
    expect(await section.locator('input[name=text]').inputValue()).toBe('')
    await inPlace()

    await menu.locator('summary').click()
    await menu.locator('.richmenu-area').first().click()
    await expect.poll(() => tapEvents().length).toBe(3)
    expect(tapEvents()[2]).toMatchObject({ postback: { data: 'action=points' } })
    await inPlace()

    // Block and unblock redraw the user's buttons and forms in place (at the section's top).
    await section.getByRole('button', { name: 'Block' }).click()
    const top = await scrollY()
    expect(top).toBeGreaterThan(1000)
    await section.getByText('Unblock to send messages').waitFor()
    expect(await section.locator('input[name=text]').count()).toBe(0)
    expect(await menu.count()).toBe(0)
    // A tap the stand-in refuses says why, where the reader is.
    await section.locator('.fx-bubble').getByText('Show card').click()
    const error = page.getByRole('alert')
    await expect.poll(() => error.textContent()).toContain('has blocked the bot')
    expect(await error.isVisible()).toBe(true)
    await section.getByRole('button', { name: 'Unblock' }).click()
    await section.locator('input[name=text]').waitFor()
    expect(await scrollY()).toBeGreaterThan(top - 100)
    expect(await samePage()).toBe(true)
    expect(await error.isVisible()).toBe(false)

    // A user created from the page gets a section of their own, live.
    await page.locator('input[name=displayName]').fill('<b>Mika</b>')
    await page.getByRole('button', { name: 'Create user and add friend' }).click()
    const mika = page.locator('section[data-user]').filter({ hasText: '<b>Mika</b>' })
    await mika.waitFor()
    expect(await mika.locator('.meta').first().textContent()).toContain('friend')
    expect(await page.locator('b').count()).toBe(0)
    expect(await samePage()).toBe(true)
    await platform.users.sendText(platform.users.list()[2]!.userId, 'hi from Mika')
    await expect
      .poll(() => mika.locator('.row-user .msg').allTextContents())
      .toEqual(['hi from Mika'])
    expect(dialogs).toEqual([])
  })

  it("without JavaScript, returns to the user's chat after a post", async () => {
    await longChat('Ao')
    const user = await longChat('Kei')
    const noScript = await page
      .context()
      .browser()!
      .newPage({ viewport: { width: 1000, height: 900 }, javaScriptEnabled: false })
    try {
      await noScript.goto(`${baseUrl}/sandbox/`)
      const section = noScript.locator(`section[data-user="${user.userId}"]`)
      await section.locator('input[name=text]').fill('こんばんは')
      await section.getByRole('button', { name: 'Send text' }).click()
      await noScript.waitForURL(`${baseUrl}/sandbox/#user-${user.userId}`)
      // The end of that user's chat is on screen: their new message and the form under it.
      for (const shown of [
        section.locator('.row-user .msg').last(),
        section.locator('input[name=text]'),
      ]) {
        const box = (await shown.boundingBox())!
        expect(box.y).toBeGreaterThanOrEqual(0)
        expect(box.y + box.height).toBeLessThanOrEqual(900)
      }
      expect(await section.locator('.row-user .msg').last().textContent()).toBe('こんばんは')
    } finally {
      await noScript.close()
    }
  })
})

describe('links inside a linked bubble on the /sandbox page', () => {
  /** Answers every request to *.example with a page, so a followed link lands somewhere. */
  async function serveExampleSites() {
    await page
      .context()
      .route(/^https:\/\/[a-z]+\.example\//, (route) =>
        route.fulfill({ contentType: 'text/html', body: '<p>elsewhere</p>' }),
      )
  }

  it("opens an inner button's own uri, and the bubble's uri elsewhere in the bubble", async () => {
    await serveExampleSites()
    const user = platform.users.create({ displayName: 'Sora' })
    await platform.users.follow(user.userId)
    await push(user.userId, [
      {
        type: 'flex',
        altText: 'Sale',
        contents: {
          type: 'bubble',
          action: { type: 'uri', label: 'bubble', uri: 'https://a.example/' },
          body: {
            type: 'box',
            layout: 'vertical',
            contents: [{ type: 'text', text: 'Spring sale' }],
          },
          footer: {
            type: 'box',
            layout: 'vertical',
            contents: [
              {
                type: 'button',
                action: { type: 'uri', label: 'Details', uri: 'https://b.example/' },
              },
              { type: 'button', action: { type: 'postback', label: 'Remind me', data: 'remind' } },
            ],
          },
        },
      },
    ])
    await page.goto(`${baseUrl}/sandbox/`)
    const bubble = page.locator('.fx-bubble')

    const popup = page.waitForEvent('popup')
    await bubble.getByText('Details').click()
    const opened = await popup
    await opened.waitForLoadState()
    expect(opened.url()).toBe('https://b.example/')
    await opened.close()

    const popup2 = page.waitForEvent('popup')
    // Plain text lies under the bubble's link: Playwright must not insist on hitting the text.
    await bubble.getByText('Spring sale').click({ force: true })
    const opened2 = await popup2
    await opened2.waitForLoadState()
    expect(opened2.url()).toBe('https://a.example/')
    await opened2.close()

    // A postback button in the linked bubble still posts, and opens nothing.
    let popups = 0
    page.on('popup', () => {
      popups += 1
    })
    await bubble.getByText('Remind me').click()
    await expect.poll(() => tapEvents().length).toBe(1)
    expect(tapEvents()[0]).toMatchObject({ postback: { data: 'remind' } })
    expect(popups).toBe(0)
    expect(page.url()).toBe(`${baseUrl}/sandbox/`)
  })
})

describe('quick replies on the /sandbox page', () => {
  const quickReply = (...actions: Record<string, unknown>[]) => ({
    items: actions.map((action) => ({ type: 'action', action })),
  })
  const LINKED = {
    type: 'text',
    text: 'Your online account is now linked.',
    quickReply: quickReply(
      { type: 'postback', label: 'Unlink / 連携解除', data: 'action=unlink' },
      { type: 'message', label: 'Help', text: 'ヘルプ' },
      { type: 'uri', label: 'Shop', uri: 'https://shop.example/' },
      { type: 'camera', label: 'Camera' },
    ),
  }

  it("draws the latest message's chips under the chat; a tapped chip sends its postback", async () => {
    const user = platform.users.create({ displayName: 'Hana' })
    await platform.users.follow(user.userId)
    await push(user.userId, [{ type: 'text', text: 'Welcome' }, LINKED])
    await page.goto(`${baseUrl}/sandbox/`)
    const section = page.locator(`section[data-user="${user.userId}"]`)
    const chips = section.locator('.quick-replies .qr-chip')
    expect(await chips.allTextContents()).toEqual(['Unlink / 連携解除', 'Help', 'Shop', 'Camera'])
    expect(await chips.nth(2).getAttribute('href')).toBe('https://shop.example/')
    expect(await chips.nth(3).isDisabled()).toBe(true) // shown; the sandbox has no camera

    await chips.first().click()
    await expect.poll(() => tapEvents().length).toBe(1)
    expect(tapEvents()).toMatchObject([
      { type: 'postback', source: { userId: user.userId }, postback: { data: 'action=unlink' } },
    ])
    // The user answered: LINE no longer shows that message's buttons.
    await expect.poll(() => chips.count()).toBe(0)
    expect(dialogs).toEqual([])
  })

  it('sends a message chip as the user, and follows new messages without a reload', async () => {
    const user = platform.users.create({ displayName: 'Kai' })
    await platform.users.follow(user.userId)
    await page.goto(`${baseUrl}/sandbox/`)
    await page.evaluate(() => Object.assign(globalThis, { samePage: true }))
    const section = page.locator(`section[data-user="${user.userId}"]`)
    const chips = section.locator('.quick-replies .qr-chip')
    expect(await chips.count()).toBe(0)

    await push(user.userId, [LINKED])
    await expect.poll(() => chips.count()).toBe(4)
    // A later message without quick replies takes them away, as in the LINE app.
    await push(user.userId, [{ type: 'text', text: 'Points: 120' }])
    await expect.poll(() => chips.count()).toBe(0)
    await push(user.userId, [LINKED])
    await expect.poll(() => chips.count()).toBe(4)
    expect(await page.evaluate(() => 'samePage' in globalThis)).toBe(true)

    await chips.nth(1).click()
    await expect.poll(() => tapEvents().length).toBe(1)
    expect(tapEvents()[0]).toMatchObject({ type: 'message', message: { text: 'ヘルプ' } })
  })
})

describe('datetime pickers on the /sandbox page', () => {
  it('asks for a date, time or datetime and sends it as the postback params', async () => {
    const user = platform.users.create({ displayName: 'Rin' })
    await platform.users.follow(user.userId)
    const picker = (label: string, mode: string, extra: Record<string, string> = {}) => ({
      type: 'button',
      action: { type: 'datetimepicker', label, data: `action=${mode}`, mode, ...extra },
    })
    await push(user.userId, [
      {
        ...bubbleOf('Book a visit', [
          picker('Pick a day', 'date', {
            initial: '2026-12-01',
            min: '2026-12-01',
            max: '2026-12-31',
          }),
          picker('Pick a time', 'time'),
        ]),
        quickReply: {
          items: [
            {
              type: 'action',
              action: {
                type: 'datetimepicker',
                label: 'When?',
                data: 'action=when',
                mode: 'datetime',
              },
            },
          ],
        },
      },
    ])
    await page.goto(`${baseUrl}/sandbox/`)
    const section = page.locator(`section[data-user="${user.userId}"]`)
    const pickerOk = async () => {
      const before = tapEvents().length
      await section.locator('.dt-picker').getByRole('button', { name: 'OK' }).click()
      await expect.poll(() => tapEvents().length).toBe(before + 1)
      // Sent: the picker closes, as LINE's does.
      await expect.poll(() => section.locator('.dt-picker').count()).toBe(0)
    }

    // The chip first: an answer takes the quick replies away.
    await section.locator('.quick-replies').getByText('When?').click()
    await section.locator('.dt-picker input[name=datetime]').fill('2026-12-24T18:30')
    await pickerOk()

    await section.locator('.fx-bubble').getByText('Pick a day').click()
    const day = section.locator('.dt-picker input[name=date]')
    expect(await day.inputValue()).toBe('2026-12-01')
    expect(await day.getAttribute('max')).toBe('2026-12-31')
    await day.fill('2026-12-24')
    await pickerOk()

    await section.locator('.fx-bubble').getByText('Pick a time').click()
    await section.locator('.dt-picker input[name=time]').fill('09:15')
    await pickerOk()

    await section.locator('.fx-bubble').getByText('Pick a time').click()
    await section.locator('.dt-picker').getByRole('button', { name: 'Cancel' }).click()
    expect(await section.locator('.dt-picker').count()).toBe(0)

    expect(tapEvents().map((e) => e.postback)).toEqual([
      { data: 'action=when', params: { datetime: '2026-12-24T18:30' } },
      { data: 'action=date', params: { date: '2026-12-24' } },
      { data: 'action=time', params: { time: '09:15' } },
    ])
    expect(dialogs).toEqual([])
  })
})

/**
 * In the page: the WCAG contrast ratio of an element's text against the first opaque
 * background under it (the bubble's, else the chat's). Self-contained: it runs in Chromium.
 */
function contrast(element: unknown): number {
  type Node = { parentElement: Node | null }
  const { getComputedStyle: style } = globalThis as unknown as {
    getComputedStyle(e: Node): { color: string; backgroundColor: string }
  }
  const rgba = (s: string) => (s.match(/[\d.]+/g) ?? []).map(Number)
  const channel = (c = 0) =>
    c / 255 <= 0.03928 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4
  const lum = ([r, g, b]: number[]) =>
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
  let under: Node | null = element as Node
  while (under && rgba(style(under).backgroundColor)[3] === 0) under = under.parentElement
  const text = lum(rgba(style(element as Node).color))
  const back = lum(under ? rgba(style(under).backgroundColor) : [255, 255, 255])
  return (Math.max(text, back) + 0.05) / (Math.min(text, back) + 0.05)
}

describe('message times on the /sandbox page', () => {
  it('shows each message time beside its bubble, readable on the chat', async () => {
    const user = platform.users.create({ displayName: 'Yuki' })
    await platform.users.follow(user.userId)
    await push(user.userId, [{ type: 'text', text: 'Thanks for adding us!' }, CARD])
    await page.goto(`${baseUrl}/sandbox/`)
    const rows = page.locator(`section[data-user="${user.userId}"] .chat > *`)
    expect(await rows.count()).toBe(2)
    const hhmm = (at: number) =>
      `${String(new Date(at).getHours()).padStart(2, '0')}:${String(new Date(at).getMinutes()).padStart(2, '0')}`
    for (const [i, entry] of platform.inbox(user.userId).entries()) {
      const time = rows.nth(i).locator('time')
      expect(await time.textContent()).toBe(hhmm(entry.at))
      expect(await time.getAttribute('datetime')).toBe(new Date(entry.at).toISOString())
      expect(await time.evaluate(contrast)).toBeGreaterThanOrEqual(4.5)
      // Beside the bubble, as LINE draws it: not on it.
      const bubble = (await rows.nth(i).locator('.msg').boundingBox())!
      const box = (await time.boundingBox())!
      expect(box.x).toBeGreaterThanOrEqual(bubble.x + bubble.width)
      expect(box.y + box.height).toBeLessThanOrEqual(bubble.y + bubble.height + 1)
    }
    // The JSON under a Flex message is readable too.
    const json = rows.nth(1).locator('details summary')
    expect(await json.evaluate(contrast)).toBeGreaterThanOrEqual(4.5)
  })
})
