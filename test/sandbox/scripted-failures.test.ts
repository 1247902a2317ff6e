import { getEventListeners } from 'node:events'
import { messagingApi } from '@line/bot-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
import { channelAccessToken, channelSecret, fetchError, richMenuRequest } from './fixtures.ts'

// What a test scripts on the stand-in: failures (failNext) and requests held (holdNext). The
// checks every request goes through, rate limits and quota: request-pipeline.test.ts.

let platform: LinePlatform
let client: messagingApi.MessagingApiClient
let userId: string

beforeAll(async () => {
  platform = await startLinePlatform({ channelSecret, channelAccessToken })
  client = new messagingApi.MessagingApiClient({ channelAccessToken, baseURL: platform.apiBaseUrl })
  userId = platform.users.create().userId
  await platform.users.follow(userId)
})
afterAll(() => platform.close())

describe('failNext', () => {
  it('fails the next matching calls before validation, then succeeds', async () => {
    platform.failNext({ method: 'POST', path: '/v2/bot/message/push', status: 500, count: 2 })
    const send = () => client.pushMessage({ to: userId, messages: [{ type: 'text', text: 'x' }] })
    expect((await fetchError(send())).status).toBe(500)
    expect((await fetchError(client.pushMessage({ to: userId, messages: [] }))).status).toBe(500)
    expect((await send()).sentMessages).toHaveLength(1)
    const statuses = platform.requestsTo('POST', '/v2/bot/message/push').slice(-3)
    expect(statuses.map((r) => [r.status, r.scripted])).toEqual([
      [500, true],
      [500, true],
      [200, false],
    ])
  })

  it('scripts a body, headers and a path pattern', async () => {
    platform.failNext({
      path: /^\/v2\/bot\/profile\//,
      status: 429,
      headers: { 'retry-after': '1' },
    })
    const error = await fetchError(client.getProfile(userId))
    expect(error.status).toBe(429)
    expect(error.headers.get('retry-after')).toBe('1')
    expect(error.body.message).toBe('The API rate limit has been exceeded. Try again later.')
  })

  it('fails only the requests `match` accepts, every time with an infinite count', async () => {
    const other = platform.users.create().userId
    await platform.users.follow(other)
    platform.failNext({
      method: 'POST',
      path: '/v2/bot/message/push',
      status: 429,
      count: Number.POSITIVE_INFINITY,
      match: (r) => (r.body as { to?: string }).to === userId,
    })
    try {
      const push = (to: string) =>
        client.pushMessage({ to, messages: [{ type: 'text', text: 'x' }] })
      for (let i = 0; i < 3; i++) expect((await fetchError(push(userId))).status).toBe(429)
      expect((await push(other)).sentMessages).toHaveLength(1)
    } finally {
      platform.clearFailures()
    }
  })

  it('hangs for timeoutMs before answering', async () => {
    platform.failNext({ path: '/v2/bot/info', timeoutMs: 300, status: 503, count: 2 })
    const get = (signal?: AbortSignal) =>
      fetch(new URL('/v2/bot/info', platform.apiBaseUrl), {
        headers: { authorization: `Bearer ${channelAccessToken}` },
        signal,
      })
    // A client that gives up first sees no answer at all; a patient one gets the status.
    await expect(get(AbortSignal.timeout(50))).rejects.toThrow(/abort|timeout/i)
    expect((await get()).status).toBe(503)
    expect((await get()).status).toBe(200)
  })

  it('drops the connection after timeoutMs when no status is given', async () => {
    platform.failNext({ path: '/v2/bot/message/push', timeoutMs: 100 })
    await expect(
      client.pushMessage({ to: userId, messages: [{ type: 'text', text: 'x' }] }),
    ).rejects.toThrow(TypeError)
    expect(platform.requestsTo('POST', '/v2/bot/message/push').at(-1)).toMatchObject({
      status: 0,
      scripted: true,
    })
  })

  it('carries the request out before losing its answer when carriedOut is set', async () => {
    const before = (await client.getRichMenuList()).richmenus.length
    platform.failNext({ method: 'POST', path: '/v2/bot/richmenu', timeoutMs: 50, carriedOut: true })
    await expect(client.createRichMenu(richMenuRequest)).rejects.toThrow(TypeError)
    const after = (await client.getRichMenuList()).richmenus
    expect(after).toHaveLength(before + 1)
    for (const m of after) await client.deleteRichMenu(m.richMenuId)
  })
})

describe('holdNext', () => {
  it('holds the next matching request until released, then carries it out as usual', async () => {
    const held = platform.holdNext({ method: 'POST', path: '/v2/bot/message/push' })
    const before = platform.inbox(userId).length
    const push = client.pushMessage({ to: userId, messages: [{ type: 'text', text: 'held' }] })
    await held.arrived
    expect(platform.requestsTo('POST', '/v2/bot/message/push').at(-1)?.status).toBe(0)
    expect(platform.inbox(userId)).toHaveLength(before)
    // Only the next one: another request goes through meanwhile.
    expect((await client.getProfile(userId)).userId).toBe(userId)

    held.release()
    expect((await push).sentMessages).toHaveLength(1)
    expect(platform.inbox(userId)).toHaveLength(before + 1)
    const again = await client.pushMessage({ to: userId, messages: [{ type: 'text', text: 'x' }] })
    expect(again.sentMessages).toHaveLength(1)
  })

  it('leaves no listener on the platform closing once a held request is released', async () => {
    const closing = platform.context.closing.signal
    const listening = getEventListeners(closing, 'abort').length
    for (let i = 0; i < 2; i++) {
      const held = platform.holdNext({ method: 'GET', path: '/v2/bot/info' })
      const info = client.getBotInfo()
      await held.arrived
      held.release()
      await info
    }
    expect(getEventListeners(closing, 'abort')).toHaveLength(listening)
  })

  it('lets a held request through when the platform is closing already', async () => {
    const closing = await startLinePlatform({ channelSecret, channelAccessToken })
    try {
      closing.holdNext({ method: 'GET', path: '/v2/bot/info' })
      closing.context.closing.abort()
      // Never released: it goes on because the platform is closing (a bound, not a timing).
      const res = await fetch(new URL('/v2/bot/info', closing.apiBaseUrl), {
        headers: { authorization: `Bearer ${channelAccessToken}` },
        signal: AbortSignal.timeout(10_000),
      })
      expect(res.status).toBe(200)
    } finally {
      await closing.close()
    }
  })
})
