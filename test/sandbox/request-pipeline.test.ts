import { randomUUID } from 'node:crypto'
import { messagingApi } from '@line/bot-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
import { channelAccessToken, channelSecret, fetchError, richMenuRequest } from './fixtures.ts'

let platform: LinePlatform
let client: messagingApi.MessagingApiClient
let userId: string

beforeAll(async () => {
  platform = await startLinePlatform({
    channelSecret,
    channelAccessToken,
    rateLimits: { 'GET /v2/bot/info': { capacity: 2, perMs: 60_000 } },
    quota: { limit: 2 },
  })
  client = new messagingApi.MessagingApiClient({ channelAccessToken, baseURL: platform.apiBaseUrl })
  userId = platform.users.create().userId
  await platform.users.follow(userId)
})
afterAll(() => platform.close())

function post(path: string, body: string, headers: Record<string, string> = {}) {
  return fetch(new URL(path, platform.apiBaseUrl), {
    method: 'POST',
    headers: {
      authorization: `Bearer ${channelAccessToken}`,
      'content-type': 'application/json',
      ...headers,
    },
    body,
  })
}

describe('authentication and request checks', () => {
  it('returns 401 without the channel access token, with a request id', async () => {
    const res = await fetch(new URL('/v2/bot/info', platform.apiBaseUrl))
    expect(res.status).toBe(401)
    expect(await res.json()).toEqual({ message: expect.stringMatching(/^Authentication failed/) })
    expect(res.headers.get('x-line-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const wrong = new messagingApi.MessagingApiClient({
      channelAccessToken: 'wrong',
      baseURL: platform.apiBaseUrl,
    })
    expect((await fetchError(wrong.getBotInfo())).status).toBe(401)
  })

  it('returns 400 for invalid JSON', async () => {
    const res = await post('/v2/bot/message/push', '{"to":')
    expect(res.status).toBe(400)
    expect(await res.json()).toEqual({ message: 'The request body could not be parsed as JSON' })
  })

  it('returns 415 for a JSON endpoint called without a JSON content type, sending nothing', async () => {
    const body = JSON.stringify({ to: userId, messages: [{ type: 'text', text: 'hi' }] })
    const before = platform.inbox(userId).length
    const plain = await post('/v2/bot/message/push', body, { 'content-type': 'text/plain' })
    expect(plain.status).toBe(415)
    const form = await post('/v2/bot/message/push', body, {
      'content-type': 'application/x-www-form-urlencoded',
    })
    expect(form.status).toBe(415)
    expect(platform.inbox(userId)).toHaveLength(before)
    const charset = await post('/v2/bot/message/validate/push', body, {
      'content-type': 'application/json; charset=utf-8',
    })
    expect(charset.status).toBe(200)
  })

  it('rejects invalid bodies with LINE-style details', async () => {
    const res = await post(
      '/v2/bot/message/push',
      JSON.stringify({ messages: [{ type: 'text' }, { type: 'sticker', packageId: '1' }] }),
    )
    expect(res.status).toBe(400)
    expect(await res.json()).toEqual({
      message: 'The request body has 3 error(s)',
      details: [
        { message: 'must be specified', property: 'to' },
        { message: 'must be specified', property: 'messages[0].text' },
        { message: 'must be specified', property: 'messages[1].stickerId' },
      ],
    })
  })

  it('rejects an unknown message type and a flex bubble with an unknown component', async () => {
    const unknownType = await fetchError(
      client.pushMessage({ to: userId, messages: [{ type: 'video-call' } as never] }),
    )
    expect(unknownType.body.details).toEqual([
      expect.objectContaining({ property: 'messages[0].type' }),
    ])
    const flex = {
      type: 'flex',
      altText: 'Points',
      contents: {
        type: 'bubble',
        body: { type: 'box', layout: 'vertical', contents: [{ type: 'marquee', text: 'x' }] },
      },
    }
    const badFlex = await fetchError(client.pushMessage({ to: userId, messages: [flex as never] }))
    expect(badFlex.body.details).toEqual([
      expect.objectContaining({ property: 'messages[0].contents.body.contents[0].type' }),
    ])
    expect(platform.inbox(userId)).toEqual([])
  })

  it('rejects a retry key on reply and a retry key that is not a UUID', async () => {
    const reply = await post(
      '/v2/bot/message/reply',
      JSON.stringify({ replyToken: 'x', messages: [{ type: 'text', text: 'x' }] }),
      { 'x-line-retry-key': randomUUID() },
    )
    expect(reply.status).toBe(400)
    const push = await post(
      '/v2/bot/message/push',
      JSON.stringify({ to: userId, messages: [{ type: 'text', text: 'x' }] }),
      { 'x-line-retry-key': 'retry-1' },
    )
    expect(push.status).toBe(400)
    expect(await push.json()).toMatchObject({
      details: [{ message: 'must be a valid uuid', property: 'X-Line-Retry-Key' }],
    })
  })

  it('counts string lengths like LINE: UTF-16 units, grapheme clusters for menu texts', async () => {
    // LINE's "Character counting in a text": 🍎 is two characters; labels, a rich menu's name
    // and chatBarText count grapheme clusters (a family emoji is one).
    const withData = (data: string) =>
      JSON.stringify({
        messages: [
          {
            type: 'flex',
            altText: 'alt',
            contents: {
              type: 'bubble',
              body: {
                type: 'box',
                layout: 'vertical',
                contents: [{ type: 'button', action: { type: 'postback', label: 'Go', data } }],
              },
            },
          },
        ],
      })
    expect((await post('/v2/bot/message/validate/push', withData('🍎'.repeat(150)))).status).toBe(
      200,
    )
    const tooLong = await post('/v2/bot/message/validate/push', withData(`${'🍎'.repeat(150)}x`))
    expect(tooLong.status).toBe(400)
    expect(await tooLong.json()).toMatchObject({
      details: [
        {
          message: 'Length must be between 0 and 300',
          property: 'messages[0].contents.body.contents[0].action.data',
        },
      ],
    })
    const family = '👨‍👩‍👧‍👦'
    const menu = (chatBarText: string) =>
      post('/v2/bot/richmenu/validate', JSON.stringify({ ...richMenuRequest, chatBarText }))
    expect((await menu(family.repeat(14))).status).toBe(200)
    const longMenu = await menu(family.repeat(15))
    expect(longMenu.status).toBe(400)
    expect(await longMenu.json()).toMatchObject({
      details: [{ message: 'Length must be between 0 and 14', property: 'chatBarText' }],
    })
  })

  it('rejects a Flex text "" like LINE ("must be non-empty text"), unless it has spans', async () => {
    const withText = (component: Record<string, unknown>) =>
      post(
        '/v2/bot/message/validate/push',
        JSON.stringify({
          messages: [
            {
              type: 'flex',
              altText: 'alt',
              contents: {
                type: 'bubble',
                body: { type: 'box', layout: 'vertical', contents: [component] },
              },
            },
          ],
        }),
      )
    const empty = await withText({ type: 'text', text: '' })
    expect(empty.status).toBe(400)
    expect(await empty.json()).toEqual({
      message: 'The request body has 1 error(s)',
      details: [
        {
          message: 'must be non-empty text',
          property: 'messages[0].contents.body.contents[0].text',
        },
      ],
    })
    const spans = { type: 'text', text: '', contents: [{ type: 'span', text: 'x' }] }
    expect((await withText(spans)).status).toBe(200)
    expect((await withText({ type: 'text', text: 'x' })).status).toBe(200)
  })

  it('records every request with lowercased headers and the parsed body', async () => {
    platform.clearRequests()
    await client.pushMessage({ to: userId, messages: [{ type: 'text', text: 'recorded' }] })
    const [recorded] = platform.requestsTo('POST', '/v2/bot/message/push')
    expect(recorded).toMatchObject({
      method: 'POST',
      path: '/v2/bot/message/push',
      template: '/v2/bot/message/push',
      status: 200,
      body: { to: userId, messages: [{ type: 'text', text: 'recorded' }] },
      headers: { authorization: `Bearer ${channelAccessToken}` },
    })
    expect(platform.requests).toHaveLength(1)
  })
})

describe('rate limits and quota', () => {
  it('answers 429 once the endpoint bucket is empty', async () => {
    await client.getBotInfo()
    await client.getBotInfo()
    const limited = await fetchError(client.getBotInfo())
    expect(limited).toMatchObject({
      status: 429,
      body: { message: 'The API rate limit has been exceeded. Try again later.' },
    })
    platform.setRateLimit('GET /v2/bot/info', null)
    await client.getBotInfo()
  })

  it('answers 429 "monthly limit" once the simulated quota is used up', async () => {
    expect(await client.getMessageQuota()).toEqual({ type: 'limited', value: 2 })
    const used = (await client.getMessageQuotaConsumption()).totalUsage
    for (let i = used; i < 2; i++) {
      await client.pushMessage({ to: userId, messages: [{ type: 'text', text: `${i}` }] })
    }
    const over = await fetchError(
      client.pushMessage({ to: userId, messages: [{ type: 'text', text: 'one more' }] }),
    )
    expect(over).toMatchObject({
      status: 429,
      body: { message: 'You have reached your monthly limit.' },
    })
    expect(await client.getMessageQuotaConsumption()).toEqual({ totalUsage: 2 })
    platform.setQuota(undefined)
  })
})
