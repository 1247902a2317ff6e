import { Hono } from 'hono'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createLinePlatform, type SandboxPlatform } from '../../src/sandbox/platform.ts'
import { createSandboxUi } from '../../src/sandbox/ui.routes.ts'
import { channelAccessToken, channelSecret, issueLinkToken } from './fixtures.ts'

let platform: SandboxPlatform
let app: Hono

beforeEach(() => {
  platform = createLinePlatform({ channelSecret, channelAccessToken })
  app = new Hono().route('/sandbox', createSandboxUi(platform))
})

async function push(to: string, messages: unknown[]) {
  const res = await platform.apiApp.request('/v2/bot/message/push', {
    method: 'POST',
    headers: { authorization: `Bearer ${channelAccessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ to, messages }),
  })
  expect(res.status).toBe(200)
}

function form(fields: Record<string, string>) {
  return { method: 'POST', body: new URLSearchParams(fields) }
}

describe("GET /sandbox/dialog/bot/accountLink (LINE's account-link dialog)", () => {
  const dialogUrl = (q: Record<string, string>) =>
    `/sandbox/dialog/bot/accountLink?${new URLSearchParams(q)}`

  it("is the link token's user's, and sends their account link", async () => {
    const user = platform.users.create()
    await platform.users.follow(user.userId)
    const linkToken = await issueLinkToken(platform, user.userId)
    const res = await app.request(dialogUrl({ linkToken, nonce: 'n'.repeat(22) }))
    expect(res.status).toBe(303)
    expect(platform.webhookDeliveries.at(-1)?.body).toMatchObject({
      events: [{ type: 'accountLink', source: { userId: user.userId }, link: { result: 'ok' } }],
    })
  })

  it('opened as another user (asUser) sends a failed account link and spends the token', async () => {
    const [user, other] = [platform.users.create(), platform.users.create()]
    await platform.users.follow(user.userId)
    await platform.users.follow(other.userId)
    const dialog = { linkToken: await issueLinkToken(platform, user.userId), nonce: 'n'.repeat(22) }
    const res = await app.request(dialogUrl({ ...dialog, asUser: other.userId }))
    expect(res.status).toBe(303)
    const last = platform.webhookDeliveries.at(-1)?.body as { events: object[] } | undefined
    const [failed] = last?.events ?? []
    expect(failed).toMatchObject({ type: 'accountLink', link: { result: 'failed' } })
    expect(failed).not.toHaveProperty('source')
    const again = await app.request(dialogUrl(dialog))
    expect(again.status).toBe(400)
    expect(await again.text()).toMatch(/used/)
  })
})

describe('GET /sandbox/', () => {
  it('redirects to the trailing-slash URL so relative form actions work', async () => {
    const res = await app.request('/sandbox')
    expect(res.status).toBe(301)
    expect(res.headers.get('location')).toBe('/sandbox/')
  })

  it('lists users with their status and the messages they received', async () => {
    const user = platform.users.create({ displayName: 'Yui' })
    await platform.users.follow(user.userId)
    const flex = {
      type: 'flex',
      altText: 'Your points: 120',
      contents: { type: 'bubble', body: { type: 'box', layout: 'vertical', contents: [] } },
    }
    await push(user.userId, [{ type: 'text', text: 'Thanks for adding us!' }, flex])
    const html = await (await app.request('/sandbox/')).text()
    expect(html).toContain('Yui')
    expect(html).toContain(user.userId)
    expect(html).toContain('friend')
    expect(html).toContain('Thanks for adding us!')
    expect(html).toContain('Your points: 120')
    expect(html).toContain('<details><summary>JSON</summary>')
    expect(html).toContain(`action="users/${user.userId}/block"`)
  })

  it('escapes user-controlled text', async () => {
    const user = platform.users.create({ displayName: '<script>alert(1)</script>' })
    await platform.users.follow(user.userId)
    await push(user.userId, [{ type: 'text', text: '<img src=x onerror=alert(2)>' }])
    await platform.users.sendText(user.userId, '<img src=x onerror=alert(3)>')
    const html = await (await app.request('/sandbox/')).text()
    expect(html).toContain('&lt;img src=x onerror=alert(3)&gt;')
    expect(html).not.toContain('<script>alert(1)')
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
    expect(html).not.toContain('<img src=x')
  })

  it('draws only http(s) images, sending no referrer, and cannot be framed', async () => {
    const user = platform.users.create()
    await platform.users.follow(user.userId)
    const image = (url: string) => ({
      type: 'image',
      originalContentUrl: url,
      previewImageUrl: url,
    })
    await push(user.userId, [
      image('javascript:alert(1)'),
      image('data:image/png;base64,iVBORw0KGgo='),
      image('https://cdn.example/shop.png'),
      {
        type: 'template',
        altText: 'Sale',
        template: {
          type: 'buttons',
          thumbnailImageUrl: 'javascript:alert(2)',
          text: 'Sale',
          actions: [{ type: 'postback', label: 'Go', data: 'go' }],
        },
      },
      {
        type: 'template',
        altText: 'New',
        template: {
          type: 'buttons',
          thumbnailImageUrl: 'https://cdn.example/new.png',
          text: 'New',
          actions: [{ type: 'postback', label: 'Go', data: 'go' }],
        },
      },
    ])
    const res = await app.request('/sandbox/')
    expect(res.headers.get('content-security-policy')).toBe("frame-ancestors 'none'")
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    const images = (await res.text()).match(/<img\b[^>]*>/g) ?? []
    expect(images).toEqual([
      '<img src="https://cdn.example/shop.png" referrerpolicy="no-referrer" style="max-width:240px">',
      '<img src="https://cdn.example/new.png" referrerpolicy="no-referrer">',
    ])
  })
})

describe('POST /sandbox/users...', () => {
  it('creates and follows, blocks, unblocks, sends text and taps postbacks', async () => {
    const created = await app.request('/sandbox/users', form({ displayName: 'Ren' }))
    expect(created.status).toBe(303)
    const [user] = platform.users.list()
    expect(user).toMatchObject({ displayName: 'Ren', friendship: 'friend' })
    const id = user!.userId
    // Back to the page at the user's chat (for forms posted without script).
    expect(created.headers.get('location')).toBe(`/sandbox/#user-${id}`)

    expect((await app.request(`/sandbox/users/${id}/block`, form({}))).status).toBe(303)
    expect(platform.users.get(id)?.friendship).toBe('blocked')
    const blockedText = await app.request(`/sandbox/users/${id}/text`, form({ text: 'hi' }))
    expect(blockedText.status).toBe(400)
    // A blocked user can't chat: the page offers Unblock instead of forms that only fail.
    const page = await (await app.request('/sandbox/')).text()
    expect(page).not.toContain(`action="users/${id}/text"`)
    expect(page).not.toContain(`action="users/${id}/postback"`)
    expect(page).toContain('Unblock to send messages')

    await app.request(`/sandbox/users/${id}/follow`, form({}))
    const text = await app.request(`/sandbox/users/${id}/text`, form({ text: 'hello' }))
    expect(text.headers.get('location')).toBe(`/sandbox/#user-${id}`)
    await app.request(`/sandbox/users/${id}/postback`, form({ data: 'action=points' }))
    const events = platform.webhookDeliveries.flatMap(
      (d) => (d.body as { events: { type: string }[] }).events,
    )
    expect(events.map((e) => e.type)).toEqual([
      'follow',
      'unfollow',
      'follow',
      'message',
      'postback',
    ])
    expect(events[2]).toMatchObject({ follow: { isUnblocked: true } })
  })

  it('sends nothing for a follow or block from a stale page, as LINE would not', async () => {
    const user = platform.users.create()
    const id = user.userId
    const types = () =>
      platform.webhookDeliveries.flatMap((d) =>
        (d.body as { events: { type: string }[] }).events.map((e) => e.type),
      )
    // Block from a page drawn before the user added the account: they are no friend to lose.
    expect((await app.request(`/sandbox/users/${id}/block`, form({}))).status).toBe(303)
    expect(platform.users.get(id)?.friendship).toBe('none')
    await app.request(`/sandbox/users/${id}/follow`, form({}))
    // Add friend again from a second tab still showing the button.
    expect((await app.request(`/sandbox/users/${id}/follow`, form({}))).status).toBe(303)
    await app.request(`/sandbox/users/${id}/block`, form({}))
    await app.request(`/sandbox/users/${id}/block`, form({}))
    expect(platform.users.get(id)?.friendship).toBe('blocked')
    expect(types()).toEqual(['follow', 'unfollow'])
  })

  it('sends a date, time or datetime picked for a datetimepicker as postback params', async () => {
    const user = platform.users.create()
    await platform.users.follow(user.userId)
    const id = user.userId
    const tap = (fields: Record<string, string>) =>
      app.request(`/sandbox/users/${id}/postback`, form({ data: 'action=visit', ...fields }))
    expect((await tap({ date: '2026-12-24' })).status).toBe(303)
    expect((await tap({ time: '18:30' })).status).toBe(303)
    expect((await tap({ datetime: '2026-12-24T18:30' })).status).toBe(303)
    expect((await tap({ date: '24/12/2026' })).status).toBe(400)
    expect((await tap({ date: '2026-12-24', time: '18:30' })).status).toBe(400)
    const postbacks = platform.webhookDeliveries
      .flatMap((d) => (d.body as { events: Record<string, unknown>[] }).events)
      .filter((e) => e.type === 'postback')
      .map((e) => e.postback)
    expect(postbacks).toEqual([
      { data: 'action=visit', params: { date: '2026-12-24' } },
      { data: 'action=visit', params: { time: '18:30' } },
      { data: 'action=visit', params: { datetime: '2026-12-24T18:30' } },
    ])
  })

  it("refuses a form posted from another site's page, and changes nothing", async () => {
    const from = (origin: string) => ({
      ...form({ displayName: 'Mallory' }),
      headers: { origin },
    })
    for (const origin of ['https://evil.example', 'null']) {
      const res = await app.request('http://127.0.0.1:3000/sandbox/users', from(origin))
      expect(res.status).toBe(403)
    }
    expect(platform.users.list()).toEqual([])
    expect(platform.webhookDeliveries).toEqual([])
    // The page's own forms (same origin) go through.
    const own = await app.request(
      'http://127.0.0.1:3000/sandbox/users',
      from('http://127.0.0.1:3000'),
    )
    expect(own.status).toBe(303)
    expect(platform.users.list()).toHaveLength(1)
  })
})

describe('GET /sandbox/events', () => {
  /** Reads the stream until `text` has come (or it ended); returns everything read so far. */
  async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, text: string) {
    let seen = ''
    const decoder = new TextDecoder()
    while (!seen.includes(text)) {
      const { done, value } = await reader.read()
      if (done) return `${seen}<end>`
      seen += decoder.decode(value, { stream: true })
    }
    return seen
  }

  it('sends the messages after the page cursor, then new ones, until the sandbox closes', async () => {
    const user = platform.users.create({ displayName: 'Yui' })
    await platform.users.follow(user.userId)
    await push(user.userId, [{ type: 'text', text: 'drawn' }])
    await push(user.userId, [{ type: 'text', text: 'missed' }])

    // The feed: Yui joined, then the two messages; the page drew up to 'drawn'.
    const drawn = platform.context.state.feed.length - 1
    const res = await app.request(`/sandbox/events?after=${drawn}`)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const reader = res.body!.getReader()
    const backlog = await readUntil(reader, 'missed')
    expect(backlog).not.toContain('drawn')
    expect(backlog).toContain(`id: ${drawn + 1}\n`)

    await push(user.userId, [{ type: 'text', text: '<img src=x onerror=alert(1)>' }])
    const live = await readUntil(reader, `id: ${drawn + 2}\n`)
    // The chat line's event (the stream also sends the user's parts).
    const data = JSON.parse(new RegExp(`^data: (.*)\nid: ${drawn + 2}$`, 'm').exec(live)![1]!) as {
      user: string
      html: string
    }
    expect(data.user).toBe(user.userId)
    expect(data.html).toContain('&lt;img src=x onerror=alert(1)&gt;')
    expect(data.html).not.toContain('<img')
    expect(platform.context.state.pageListeners.size).toBe(1)

    // A new user comes as their section, escaped.
    const other = platform.users.create({ displayName: '<b>Ren</b>' })
    const joined = await readUntil(reader, `id: ${drawn + 3}\n`)
    const section = new RegExp(`^event: section\ndata: (.*)\nid: ${drawn + 3}$`, 'm').exec(joined)
    const added = JSON.parse(section![1]!) as { user: string; html: string }
    expect(added.user).toBe(other.userId)
    expect(added.html).toContain(`<section data-user="${other.userId}">`)
    expect(added.html).toContain('&lt;b&gt;Ren&lt;/b&gt;')

    platform.context.closing.abort()
    expect(await readUntil(reader, '<never>')).toBe('<end>')
    expect(platform.context.state.pageListeners.size).toBe(0)
  })

  it('stops listening when the page goes away', async () => {
    const res = await app.request('/sandbox/events')
    expect(platform.context.state.pageListeners.size).toBe(1)
    await res.body!.cancel()
    await vi.waitFor(() => expect(platform.context.state.pageListeners.size).toBe(0))
  })
})

describe('GET /sandbox/dialog/bot/accountLink (LINE-API.md §6)', () => {
  const linkToken = (userId: string) => issueLinkToken(platform, userId)
  const dialog = (linkToken: string, nonce: string) =>
    app.request(`/sandbox/dialog/bot/accountLink?${new URLSearchParams({ linkToken, nonce })}`)
  const linkEvents = () =>
    platform.webhookDeliveries
      .flatMap((d) => (d.body as { events: { type: string }[] }).events)
      .filter((e) => e.type === 'accountLink')

  it('refuses a nonce outside 10 to 255 characters, sending no event', async () => {
    const user = platform.users.create()
    await platform.users.follow(user.userId)
    const token = await linkToken(user.userId)
    expect((await dialog(token, 'x'.repeat(9))).status).toBe(400)
    expect((await dialog(token, 'x'.repeat(256))).status).toBe(400)
    expect(linkEvents()).toEqual([])
    const linked = await dialog(token, 'x'.repeat(10))
    expect(linked.status).toBe(303)
    // LINE returns to the chat: the page, at that user's.
    expect(linked.headers.get('location')).toBe(`/sandbox/#user-${user.userId}`)
    expect(linkEvents()).toHaveLength(1)
  })

  it('takes a link token once', async () => {
    const user = platform.users.create()
    await platform.users.follow(user.userId)
    const token = await linkToken(user.userId)
    expect((await dialog(token, 'n'.repeat(22))).status).toBe(303)
    expect((await dialog(token, 'm'.repeat(22))).status).toBe(400)
    expect(linkEvents()).toHaveLength(1)
  })
})
