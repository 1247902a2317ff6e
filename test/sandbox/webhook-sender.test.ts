import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { messagingApi, validateSignature, type webhook } from '@line/bot-sdk'
import { Hono } from 'hono'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { loadOpenApiValidator, webhookSpecPath } from '../../src/sandbox/openapi-validator.ts'
import { type LinePlatform, startLinePlatform } from '../../src/sandbox/platform.ts'
import { signWebhookBody } from '../../src/sandbox/webhook-sender.ts'
import { channelAccessToken, channelSecret, issueLinkToken } from './fixtures.ts'

type Received = { raw: string; headers: Headers; body: webhook.CallbackRequest }

const webhookSpec = loadOpenApiValidator(webhookSpecPath)
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/
let received: Received[] = []
let answer = { status: 200, delayMs: 0 }
let receiver: ReturnType<typeof serve>
let platform: LinePlatform
let clock = Date.now()

beforeAll(async () => {
  const app = new Hono().post('/webhooks/line', async (c) => {
    const raw = Buffer.from(await c.req.arrayBuffer()).toString('utf8')
    received.push({ raw, headers: c.req.raw.headers, body: JSON.parse(raw) })
    await new Promise((resolve) => setTimeout(resolve, answer.delayMs))
    return c.text('ok', answer.status as 200)
  })
  const port = await new Promise<number>((resolve) => {
    receiver = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
      resolve(info.port),
    )
  })
  platform = await startLinePlatform({
    channelSecret,
    channelAccessToken,
    webhookUrl: `http://127.0.0.1:${port}/webhooks/line`,
    webhookTimeoutMs: 300,
    now: () => clock,
  })
})
afterAll(async () => {
  await platform.close()
  await new Promise((resolve) => receiver.close(resolve))
})
beforeEach(() => {
  received = []
  answer = { status: 200, delayMs: 0 }
})

/** The one request the receiver got: signature and schema checked. */
function lastValidDelivery(): Received {
  expect(received).toHaveLength(1)
  const [delivery] = received as [Received]
  expect(delivery.headers.get('content-type')).toBe('application/json; charset=utf-8')
  const signature = delivery.headers.get('x-line-signature') ?? ''
  expect(validateSignature(delivery.raw, channelSecret, signature)).toBe(true)
  expect(webhookSpec.validateSchema('CallbackRequest', delivery.body)).toEqual([])
  expect(delivery.body.destination).toBe(platform.botUserId)
  return delivery
}

describe('simulated users send webhooks', () => {
  it('signs LINE’s official test vector the same way', () => {
    const body = '{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}'
    expect(signWebhookBody('8c570fa6dd201bb328f1c1eac23a96d8', body)).toBe(
      'GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=',
    )
  })

  it('follow, block and unblock', async () => {
    const user = platform.users.create({ displayName: 'Aiko' })
    const follow = (await platform.users.follow(user.userId))!
    expect(follow.status).toBe(200)
    const [event] = lastValidDelivery().body.events as [webhook.FollowEvent]
    expect(event).toEqual({
      type: 'follow',
      mode: 'active',
      timestamp: clock,
      webhookEventId: expect.stringMatching(ULID),
      deliveryContext: { isRedelivery: false },
      source: { type: 'user', userId: user.userId },
      replyToken: expect.stringMatching(/^[0-9a-f]{32}$/),
      follow: { isUnblocked: false },
    })
    expect(follow.body).toEqual(received[0]?.body)

    received = []
    await platform.users.block(user.userId)
    const [unfollow] = lastValidDelivery().body.events
    expect(unfollow).toMatchObject({ type: 'unfollow', source: { userId: user.userId } })
    expect(unfollow).not.toHaveProperty('replyToken')

    received = []
    await platform.users.follow(user.userId)
    expect(lastValidDelivery().body.events[0]).toMatchObject({ follow: { isUnblocked: true } })
  })

  it('text messages, postbacks and account links', async () => {
    const user = platform.users.create()
    await platform.users.follow(user.userId)
    received = []
    await platform.users.sendText(user.userId, 'ポイントは？')
    expect(lastValidDelivery().body.events[0]).toMatchObject({
      type: 'message',
      message: { type: 'text', id: expect.stringMatching(/^\d+$/), text: 'ポイントは？' },
    })

    received = []
    await platform.users.postback(user.userId, 'action=reserve', { datetime: '2026-12-01T10:00' })
    expect(lastValidDelivery().body.events[0]).toMatchObject({
      type: 'postback',
      postback: { data: 'action=reserve', params: { datetime: '2026-12-01T10:00' } },
    })

    received = []
    await platform.users.accountLink(user.userId, {
      linkToken: await issueLinkToken(platform, user.userId),
      nonce: 'nonce-1234567890',
    })
    expect(lastValidDelivery().body.events[0]).toMatchObject({
      type: 'accountLink',
      replyToken: expect.any(String),
      link: { result: 'ok', nonce: 'nonce-1234567890' },
    })

    received = []
    const dialog = {
      linkToken: await issueLinkToken(platform, user.userId),
      nonce: 'nonce-abcdefghij',
    }
    await platform.users.accountLink(user.userId, dialog, 'failed')
    const [failed] = lastValidDelivery().body.events
    expect(failed).toMatchObject({ type: 'accountLink', link: { result: 'failed' } })
    expect(failed).not.toHaveProperty('source')
    expect(failed).not.toHaveProperty('replyToken')
  })

  it('writes non-ASCII text as \\u escapes, signed over those bytes (LINE-API.md §1.2, §9.1)', async () => {
    // LINE's bodies may carry escapes such as \uD83E\uDD28: a receiver that parses the body and
    // signs it again (JSON.stringify writes the emoji itself) must fail against the stand-in.
    const user = platform.users.create()
    await platform.users.follow(user.userId)
    received = []
    await platform.users.sendText(user.userId, 'face 🤨 and ポイント')
    const { raw, body } = lastValidDelivery()
    expect(raw).toContain('"text":"face \\uD83E\\uDD28 and \\u30DD\\u30A4\\u30F3\\u30C8"')
    expect(raw).toMatch(/^[\x20-\x7e]*$/)
    expect(body.events[0]).toMatchObject({ message: { text: 'face 🤨 and ポイント' } })
    expect(JSON.stringify(body)).not.toBe(raw)
  })

  it('sends an account link only for a live link token of that user, once (LINE-API.md §6)', async () => {
    const [user, other] = [platform.users.create(), platform.users.create()]
    await platform.users.follow(user.userId)
    await platform.users.follow(other.userId)
    received = []
    const refused = (
      userId: string,
      dialog: { linkToken: string; nonce: string },
      reason: RegExp,
    ) => expect(platform.users.accountLink(userId, dialog)).rejects.toThrow(reason)

    await refused(user.userId, { linkToken: 'never-issued', nonce: 'n'.repeat(22) }, /unknown/)
    const linkToken = await issueLinkToken(platform, user.userId)
    await refused(user.userId, { linkToken, nonce: 'n'.repeat(9) }, /10 to 255/)
    await refused(user.userId, { linkToken, nonce: 'n'.repeat(256) }, /10 to 255/)
    expect(received).toEqual([])

    await platform.users.accountLink(user.userId, { linkToken, nonce: 'n'.repeat(10) })
    expect(lastValidDelivery().body.events[0]).toMatchObject({ link: { result: 'ok' } })
    received = []
    await refused(user.userId, { linkToken, nonce: 'n'.repeat(22) }, /used/)

    const late = await issueLinkToken(platform, user.userId)
    clock += 10 * 60 * 1000
    await refused(user.userId, { linkToken: late, nonce: 'n'.repeat(22) }, /expired/)
    expect(received).toEqual([])
  })

  it('sends a failed account link, with no source or reply token, when another user opens the dialog', async () => {
    // LINE-API.md §6: the dialog opened in someone else's LINE (an impersonation) ends in
    // `result: failed`, and the link token is spent.
    const [user, other] = [platform.users.create(), platform.users.create()]
    await platform.users.follow(user.userId)
    await platform.users.follow(other.userId)
    const dialog = { linkToken: await issueLinkToken(platform, user.userId), nonce: 'n'.repeat(22) }
    received = []
    await platform.users.accountLink(other.userId, dialog)
    const [failed] = lastValidDelivery().body.events
    expect(failed).toMatchObject({
      type: 'accountLink',
      link: { result: 'failed', nonce: dialog.nonce },
    })
    expect(failed).not.toHaveProperty('source')
    expect(failed).not.toHaveProperty('replyToken')
    received = []
    await expect(platform.users.accountLink(user.userId, dialog)).rejects.toThrow(/used/)
    expect(received).toEqual([])
  })

  it('delivers batched, out-of-order and redelivered envelopes', async () => {
    const [a, b] = [platform.users.create(), platform.users.create()]
    const later = platform.buildEvent(
      'text',
      a.userId,
      { text: 'second' },
      { timestamp: clock + 5 },
    )
    const earlier = platform.buildEvent(
      'postback',
      b.userId,
      { data: 'first' },
      { timestamp: clock },
    )
    const batch = platform.envelope([later, earlier, platform.buildEvent('unfollow', a.userId, {})])
    expect((await platform.deliverWebhook(batch)).status).toBe(200)
    const ids = lastValidDelivery().body.events.map((e) => e.webhookEventId)
    expect([...ids].sort()).toEqual(ids) // monotonic ULIDs, even within one millisecond

    received = []
    await platform.deliverWebhook(batch, { redelivery: true })
    const again = lastValidDelivery().body.events
    expect(again.map((e) => e.webhookEventId)).toEqual(ids)
    expect(again.every((e) => e.deliveryContext.isRedelivery)).toBe(true)
  })

  it('revives an unused reply token on redelivery (within 20 minutes)', async () => {
    const user = platform.users.create()
    await platform.users.follow(user.userId)
    const event = platform.buildEvent('text', user.userId, { text: 'hi' })
    await platform.deliverWebhook([event])
    clock += 5 * 60_000
    const client = new messagingApi.MessagingApiClient({
      channelAccessToken,
      baseURL: platform.apiBaseUrl,
    })
    const replyToken = (event as webhook.MessageEvent).replyToken ?? ''
    const reply = { replyToken, messages: [{ type: 'text' as const, text: 'sorry, late' }] }
    await expect(client.replyMessage(reply)).rejects.toMatchObject({ status: 400 })
    await platform.deliverWebhook([event], { redelivery: true })
    await expect(client.replyMessage(reply)).resolves.toMatchObject({ sentMessages: [{}] })
  })
})

describe('deliverWebhook failures', () => {
  it('sends a signature override verbatim', async () => {
    await platform.deliverWebhook([], { signatureOverride: 'bad' })
    expect(received[0]?.headers.get('x-line-signature')).toBe('bad')
  })

  it('reports error statuses, timeouts and a missing URL like LINE’s statistics', async () => {
    answer = { status: 500, delayMs: 0 }
    expect(await platform.deliverWebhook([])).toMatchObject({
      status: 500,
      error: 'error_status_code',
    })
    answer = { status: 200, delayMs: 600 }
    expect(await platform.deliverWebhook([])).toMatchObject({ status: 0, error: 'request_timeout' })
    const url = platform.webhookUrl
    platform.setWebhookUrl(undefined)
    expect(await platform.deliverWebhook([])).toMatchObject({ status: 0, error: 'no_webhook_url' })
    platform.setWebhookUrl(url)
    expect(platform.webhookDeliveries.at(-1)?.error).toBe('no_webhook_url')
  })
})
