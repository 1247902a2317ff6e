import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  createOpenApiValidator,
  loadOpenApiValidator,
  messagingApiSpecPath,
  toLinePath,
  webhookSpecPath,
} from '../../src/sandbox/openapi-validator.ts'

const shared = new URL('../../../shared/line-openapi/', import.meta.url)
const api = loadOpenApiValidator(messagingApiSpecPath)
const push = api.findOperation('POST', '/v2/bot/message/push')!.op
const text = (t: string) => ({ type: 'text', text: t })
const bubble = (contents: unknown[]) => ({
  type: 'flex',
  altText: 'alt',
  contents: { type: 'bubble', body: { type: 'box', layout: 'vertical', contents } },
})

describe('vendored LINE OpenAPI specs', () => {
  for (const name of ['messaging-api.yml', 'webhook.yml']) {
    it.skipIf(!existsSync(new URL(name, shared)))(`${name} is byte-identical to ../shared`, () => {
      const vendored = new URL(`../../src/sandbox/openapi/${name}`, import.meta.url)
      expect(readFileSync(vendored).equals(readFileSync(new URL(name, shared)))).toBe(true)
    })
  }
})

describe('createOpenApiValidator', () => {
  it('finds operations by method and path, preferring literal segments', () => {
    expect(api.findOperation('GET', '/v2/bot/richmenu/list')?.op.operationId).toBe(
      'getRichMenuList',
    )
    expect(api.findOperation('GET', '/v2/bot/user/all/richmenu')?.op.operationId).toBe(
      'getDefaultRichMenuId',
    )
    const profile = api.findOperation('GET', '/v2/bot/profile/U123')
    expect(profile?.op.template).toBe('/v2/bot/profile/{userId}')
    expect(profile?.params).toEqual({ userId: 'U123' })
    expect(api.findOperation('PATCH', '/v2/bot/message/push')).toBeUndefined()
    expect(push.headers.has('x-line-retry-key')).toBe(true)
  })

  it('accepts a valid push body', () => {
    expect(api.validateBody(push, { to: 'U1', messages: [text('hi')] })).toEqual([])
  })

  it('rejects a text message without text, with a LINE-style property path', () => {
    expect(api.validateBody(push, { to: 'U1', messages: [text('ok'), { type: 'text' }] })).toEqual([
      { message: 'must be specified', property: 'messages[1].text' },
    ])
  })

  it('rejects a missing `to`, and 0 or 6 messages', () => {
    expect(api.validateBody(push, { messages: [] })).toEqual([
      { message: 'must be specified', property: 'to' },
      { message: 'Size must be between 1 and 5', property: 'messages' },
    ])
    const six = Array.from({ length: 6 }, () => text('x'))
    expect(api.validateBody(push, { to: 'U1', messages: six })).toEqual([
      { message: 'Size must be between 1 and 5', property: 'messages' },
    ])
  })

  it('dispatches on the discriminator: unknown message types are rejected', () => {
    const [detail] = api.validateBody(push, { to: 'U1', messages: [{ type: 'carousel' }] })
    expect(detail?.property).toBe('messages[0].type')
    expect(detail?.message).toMatch(/^must be one of the following values: \[text, /)
  })

  it('validates nested polymorphic Flex components and actions', () => {
    const unknownComponent = bubble([{ type: 'text', text: 'ok' }, { type: 'sparkle' }])
    expect(api.validateBody(push, { to: 'U1', messages: [unknownComponent] })).toEqual([
      expect.objectContaining({ property: 'messages[0].contents.body.contents[1].type' }),
    ])
    const longData = bubble([
      { type: 'button', action: { type: 'postback', label: 'Go', data: 'x'.repeat(301) } },
    ])
    expect(api.validateBody(push, { to: 'U1', messages: [longData] })).toEqual([
      {
        message: 'Length must be between 0 and 300',
        property: 'messages[0].contents.body.contents[0].action.data',
      },
    ])
    const boxWithoutLayout = bubble([{ type: 'box', contents: [] }])
    expect(api.validateBody(push, { to: 'U1', messages: [boxWithoutLayout] })).toEqual([
      { message: 'must be specified', property: 'messages[0].contents.body.contents[0].layout' },
    ])
    const badQuickReply = {
      ...text('pick'),
      quickReply: { items: [{ type: 'action', action: {} }] },
    }
    expect(api.validateBody(push, { to: 'U1', messages: [badQuickReply] })).toEqual([
      { message: 'must be specified', property: 'messages[0].quickReply.items[0].action.type' },
    ])
  })

  it('checks formats such as the retry key UUID and image URLs', () => {
    const retryKey = push.headers.get('x-line-retry-key')!
    expect(api.validateHeader(retryKey, '123e4567-e89b-12d3-a456-426614174000')).toEqual([])
    expect(api.validateHeader(retryKey, 'not-a-uuid')).toEqual([
      { message: 'must be a valid uuid', property: 'X-Line-Retry-Key' },
    ])
    const image = { type: 'image', originalContentUrl: 'nope', previewImageUrl: 'https://x/y.png' }
    expect(api.validateBody(push, { to: 'U1', messages: [image] })).toEqual([
      { message: 'must be a valid uri', property: 'messages[0].originalContentUrl' },
    ])
  })

  it('turns OpenAPI `nullable` into a null type', () => {
    const spec = {
      openapi: '3.0.0',
      paths: {},
      components: {
        schemas: {
          Plan: {
            type: 'object',
            required: ['limit'],
            properties: { limit: { type: 'integer', nullable: true, example: 3 } },
          },
        },
      },
    }
    const validator = createOpenApiValidator(spec)
    expect(validator.validateSchema('Plan', { limit: null })).toEqual([])
    expect(validator.validateSchema('Plan', { limit: 'x' })).toEqual([
      { message: 'must be integer,null', property: 'limit' },
    ])
  })

  it('validates webhook bodies against webhook.yml with the same machinery', () => {
    const webhook = loadOpenApiValidator(webhookSpecPath)
    const follow = {
      type: 'follow',
      mode: 'active',
      timestamp: 1,
      webhookEventId: '01H00000000000000000000000',
      deliveryContext: { isRedelivery: false },
      source: { type: 'user', userId: `U${'a'.repeat(32)}` },
    }
    expect(
      webhook.validateSchema('CallbackRequest', {
        destination: `U${'b'.repeat(32)}`,
        events: [follow],
      }),
    ).toEqual([
      { message: 'must be specified', property: 'events[0].replyToken' },
      { message: 'must be specified', property: 'events[0].follow' },
    ])
  })
})

describe("LINE's message limits beyond its spec (LINE-API.md §3)", () => {
  const send = (...messages: unknown[]) => api.validateBody(push, { to: 'U1', messages })
  const postback = (label: string) => ({ type: 'postback', label, data: 'a=1' })
  const buttons = (template: Record<string, unknown>) => ({
    type: 'template',
    altText: 'alt',
    template: { type: 'buttons', text: 'Pick', actions: [postback('Go')], ...template },
  })

  it('refuses text over 5000 characters and a Flex altText over 1500', () => {
    expect(send(text('x'.repeat(5000)))).toEqual([])
    expect(send(text('x'.repeat(5001)))).toEqual([
      { message: 'Length must be between 0 and 5000', property: 'messages[0].text' },
    ])
    const alt = { ...bubble([{ type: 'text', text: 'hi' }]), altText: 'a'.repeat(1501) }
    expect(send(alt)).toEqual([
      { message: 'Length must be between 0 and 1500', property: 'messages[0].altText' },
    ])
  })

  it('limits labels by place: 20 in a quick reply or template, 40 in Flex', () => {
    const quick = {
      ...text('pick'),
      quickReply: { items: [{ type: 'action', action: postback('x'.repeat(21)) }] },
    }
    expect(send(quick)).toEqual([
      {
        message: 'Length must be between 0 and 20',
        property: 'messages[0].quickReply.items[0].action.label',
      },
    ])
    expect(send(buttons({ actions: [postback('x'.repeat(21))] }))).toEqual([
      {
        message: 'Length must be between 0 and 20',
        property: 'messages[0].template.actions[0].label',
      },
    ])
    const flexButton = (label: string) => bubble([{ type: 'button', action: postback(label) }])
    expect(send(flexButton('x'.repeat(40)))).toEqual([])
    // Labels count grapheme clusters: 40 family emoji are 40, not 440.
    expect(send(flexButton('👨‍👩‍👧‍👦'.repeat(40)))).toEqual([])
    expect(send(flexButton('x'.repeat(41)))).toEqual([
      {
        message: 'Length must be between 0 and 40',
        property: 'messages[0].contents.body.contents[0].action.label',
      },
    ])
  })

  it('limits action texts and URIs, and refuses actions outside their place', () => {
    const act = (action: unknown) => bubble([{ type: 'button', action }])
    expect(send(act({ type: 'message', label: 'Hi', text: 'x'.repeat(301) }))[0]?.message).toBe(
      'Length must be between 0 and 300',
    )
    expect(
      send(act({ type: 'postback', label: 'Hi', data: 'a', displayText: 'x'.repeat(301) })),
    ).toHaveLength(1)
    expect(
      send(act({ type: 'uri', label: 'Go', uri: `https://x.example/${'a'.repeat(1000)}` })),
    ).toHaveLength(1)
    expect(send(act({ type: 'uri', label: 'Go', uri: 'ftp://x.example/' }))).toEqual([
      {
        message: 'must match ^(https?|line|tel):',
        property: 'messages[0].contents.body.contents[0].action.uri',
      },
    ])
    expect(send(act({ type: 'richmenuswitch', richMenuAliasId: 'a', data: 'd' }))).toEqual([
      {
        message: 'is not allowed here',
        property: 'messages[0].contents.body.contents[0].action.type',
      },
    ])
    const camera = {
      ...text('pick'),
      quickReply: { items: [{ type: 'action', action: { type: 'camera', label: 'Cam' } }] },
    }
    expect(send(camera)).toEqual([])
  })

  it('limits templates: altText 400, buttons text 160 (60 with a title), 4 actions', () => {
    expect(send({ ...buttons({}), altText: 'a'.repeat(401) })).toHaveLength(1)
    expect(send(buttons({ text: 'x'.repeat(160) }))).toEqual([])
    expect(send(buttons({ text: 'x'.repeat(161) }))).toHaveLength(1)
    expect(send(buttons({ title: 'T', text: 'x'.repeat(61) }))).toEqual([
      { message: 'Length must be between 0 and 60', property: 'messages[0].template.text' },
    ])
    const five = Array.from({ length: 5 }, () => postback('Go'))
    expect(send(buttons({ actions: five }))).toEqual([
      { message: 'Size must be between 0 and 4', property: 'messages[0].template.actions' },
    ])
  })

  it('limits Flex containers: 30 KB a bubble, 12 bubbles of one size in a carousel', () => {
    const big = bubble([{ type: 'text', text: 'x'.repeat(30_000) }])
    expect(send(big)).toEqual([
      { message: 'must be at most 30000 bytes of JSON', property: 'messages[0].contents' },
    ])
    const small = { type: 'bubble', body: { type: 'box', layout: 'vertical', contents: [] } }
    const carousel = (contents: unknown[]) => ({
      type: 'flex',
      altText: 'alt',
      contents: { type: 'carousel', contents },
    })
    expect(send(carousel(Array.from({ length: 12 }, () => small)))).toEqual([])
    expect(send(carousel(Array.from({ length: 13 }, () => small)))).toEqual([
      { message: 'Size must be between 1 and 12', property: 'messages[0].contents.contents' },
    ])
    expect(send(carousel([small, { ...small, size: 'kilo' }]))).toEqual([
      {
        message: 'every bubble must have the same size',
        property: 'messages[0].contents.contents',
      },
    ])
  })
})

describe('toLinePath', () => {
  it('writes array indexes in brackets and object keys with dots', () => {
    const data = { messages: [{ contents: { '0': { a: 1 } } }] }
    expect(toLinePath('/messages/0/contents/0/a', data)).toBe('messages[0].contents.0.a')
    expect(toLinePath('', data)).toBe('')
  })
})
