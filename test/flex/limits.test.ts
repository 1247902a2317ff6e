import { describe, expect, it } from 'vitest'
import { checkFlexMessage } from '../../src/flex/flex-limits.ts'
import { renderMessage, TemplateError } from '../../src/flex/message-template.ts'
import { loadFlexSample } from '../../src/flex/render.ts'
import { bubbleTemplate, templateFolder, text } from './template-folder.ts'

describe('variables', () => {
  const sample = loadFlexSample('purchase-follow-up')
  const errorOf = (vars: Record<string, unknown>) => {
    try {
      renderMessage('purchase-follow-up', vars)
    } catch (error) {
      return error as TemplateError
    }
    throw new Error('expected a TemplateError')
  }

  it('are checked against the schema, naming the file and the JSON path', () => {
    const lines = [{ name: 'Tee', quantity: 1.5, amount: '¥1' }]
    const error = errorOf({ ...sample, lines })
    expect(error).toBeInstanceOf(TemplateError)
    expect(error.message).toBe(
      'flex-templates/purchase-follow-up.json: vars/lines/0/quantity must be integer',
    )
    expect(error.file).toBe('flex-templates/purchase-follow-up.json')
    expect(error.path).toBe('vars/lines/0/quantity')
  })

  it('name every missing or bad var', () => {
    const { storeName: _, ...vars } = sample
    const error = errorOf({
      ...vars,
      lines: [],
      recommendations: [{ sku: 'A', name: 'B', price: '¥1', imageUrl: 'http://x.example/a.png' }],
    })
    expect(error.problems.map((p) => p.path)).toEqual([
      'vars/storeName',
      'vars/lines',
      'vars/recommendations/0/imageUrl',
    ])
    expect(error.message).toContain('vars/storeName is required')
    expect(error.message).toContain('vars/lines must NOT have fewer than 1 items')
    expect(error.message).toContain(
      'vars/recommendations/0/imageUrl must match pattern "^https://"',
    )
  })
})

describe('LINE limits after rendering', () => {
  const bubble = (body: unknown[], extra: Record<string, unknown> = {}) => ({
    type: 'bubble',
    ...extra,
    body: { type: 'box', layout: 'vertical', contents: body },
  })
  const check = (contents: unknown, altText = 'alt') =>
    checkFlexMessage({ altText, contents }).map((p) => `${p.path} ${p.message}`)
  const button = (action: Record<string, unknown>) => ({ type: 'button', action })
  const at = 'line.contents.body.contents[0].action'

  it('passes a plain bubble', () => {
    expect(check(bubble([text('hello')]))).toEqual([])
  })

  it('altText is 1 to 1500 characters, counted in UTF-16 units as LINE does', () => {
    expect(check(bubble([]), '')).toEqual(['line.altText must be 1 to 1500 characters (is 0)'])
    expect(check(bubble([]), 'a'.repeat(1500))).toEqual([])
    expect(check(bubble([]), 'a'.repeat(1501))).toEqual([
      'line.altText must be 1 to 1500 characters (is 1501)',
    ])
    // LINE: "🍎 is two characters long, not one"; so is a kanji outside the BMP.
    expect(check(bubble([]), '🍎'.repeat(750))).toEqual([])
    expect(check(bubble([]), `${'𠮷'.repeat(750)}a`)).toEqual([
      'line.altText must be 1 to 1500 characters (is 1501)',
    ])
  })

  it('labels and action texts count grapheme clusters, postback data UTF-16 units', () => {
    // One family emoji is 1 grapheme cluster, 7 code points, 11 UTF-16 units.
    const family = '👨‍👩‍👧‍👦'
    const postback = (extra: Record<string, unknown>) =>
      check(bubble([button({ type: 'postback', label: 'ok', data: 'd', ...extra })]))
    expect(postback({ label: family.repeat(40) })).toEqual([])
    expect(postback({ label: family.repeat(41) })).toEqual([
      `${at}.label must be at most 40 characters (is 41)`,
    ])
    expect(postback({ displayText: '🇯🇵'.repeat(300) })).toEqual([])
    expect(
      check(bubble([button({ type: 'message', label: 'ok', text: family.repeat(300) })])),
    ).toEqual([])
    expect(postback({ data: '🍎'.repeat(150) })).toEqual([])
    expect(postback({ data: `${'🍎'.repeat(150)}x` })).toEqual([
      `${at}.data must be at most 300 characters (is 301)`,
    ])
  })

  it('a text component needs text: LINE refuses "" with "must be non-empty text"', async () => {
    const dir = await templateFolder({
      nickname: {
        template: bubbleTemplate({
          body: [text('{{nickname}}')],
          properties: { nickname: { type: 'string', maxLength: 20 } },
        }),
      },
    })
    expect(() => renderMessage('nickname', { nickname: 'Hana' }, { dir })).not.toThrow()
    expect(() => renderMessage('nickname', { nickname: '' }, { dir })).toThrow(
      /: line\.contents\.body\.contents\[0\]\.text must be non-empty text$/,
    )
    // With spans LINE ignores `text`.
    const spans = { type: 'text', text: '', contents: [{ type: 'span', text: 'x' }] }
    expect(check(bubble([spans]))).toEqual([])
  })

  it('a bubble is at most 30 KB of JSON', () => {
    const [problem] = check(bubble([text('x'.repeat(30_000))]))
    expect(problem).toMatch(/^line\.contents is 30\d{3} bytes of JSON; LINE takes at most 30000$/)
  })

  it('a carousel holds at most 12 bubbles of one size, 50 KB in all', () => {
    const many = { type: 'carousel', contents: Array.from({ length: 13 }, () => bubble([])) }
    expect(check(many)).toEqual(['line.contents.contents must hold 1 to 12 bubbles (has 13)'])
    const mixed = { type: 'carousel', contents: [bubble([]), bubble([], { size: 'kilo' })] }
    expect(check(mixed)).toEqual([
      'line.contents.contents[1].size is kilo; every bubble must be mega',
    ])
    const big = {
      type: 'carousel',
      contents: Array.from({ length: 3 }, () => bubble([text('x'.repeat(20_000))])),
    }
    expect(check(big)).toEqual([
      expect.stringMatching(/^line\.contents is 60\d{3} bytes of JSON; LINE takes at most 50000$/),
    ])
  })

  it('action texts: postback data, displayText, message text at most 300; labels 40', () => {
    const long = 'x'.repeat(301)
    expect(check(bubble([button({ type: 'postback', label: 'ok', data: long })]))).toEqual([
      `${at}.data must be at most 300 characters (is 301)`,
    ])
    expect(
      check(bubble([button({ type: 'postback', label: 'ok', data: 'd', displayText: long })])),
    ).toEqual([`${at}.displayText must be at most 300 characters (is 301)`])
    expect(check(bubble([button({ type: 'message', label: 'ok', text: long })]))).toEqual([
      `${at}.text must be at most 300 characters (is 301)`,
    ])
    expect(check(bubble([button({ type: 'message', label: 'l'.repeat(41), text: 't' })]))).toEqual([
      `${at}.label must be at most 40 characters (is 41)`,
    ])
  })

  it('uri actions: at most 1000 characters, http https line tel only', () => {
    const uri = (value: string) => check(bubble([button({ type: 'uri', label: 'go', uri: value })]))
    expect(uri('https://a.example/')).toEqual([])
    expect(uri('tel:0312345678')).toEqual([])
    expect(uri('line://nv/chat')).toEqual([])
    expect(uri(`https://a.example/${'x'.repeat(1000)}`)).toEqual([
      `${at}.uri must be at most 1000 characters (is 1018)`,
    ])
    // The field, never its value: these messages end up in delivery.last_error, and a URL can
    // carry a token or a customer's id.
    expect(uri('javascript:alert(1)')).toEqual([`${at}.uri must use http: https: line: tel:`])
    expect(uri('data:text/html,x')).toHaveLength(1)
    expect(uri('https://a example/?token=secret')).toEqual([`${at}.uri is not a valid URL`])
  })

  it('images and icons are https', () => {
    const image = { type: 'image', url: 'http://img.example/a.png' }
    const icon = {
      type: 'box',
      layout: 'baseline',
      contents: [{ type: 'icon', url: 'ftp://img.example/i.png' }, text('t')],
    }
    expect(check(bubble([image, icon]))).toEqual([
      'line.contents.body.contents[0].url must be an https:// URL',
      'line.contents.body.contents[1].contents[0].url must be an https:// URL',
    ])
    expect(
      checkFlexMessage({ altText: 'a', contents: bubble([image]) }, { allowHttpImages: true }),
    ).toEqual([])
  })

  it('renderMessage throws them as a TemplateError naming the file and path', async () => {
    const dir = await templateFolder({
      'long-label': {
        template: bubbleTemplate({
          properties: { label: { type: 'string' } },
          body: [{ type: 'button', action: { type: 'message', label: '{{label}}', text: 'hi' } }],
        }),
      },
    })
    expect(() => renderMessage('long-label', { label: 'L'.repeat(41) }, { dir })).toThrow(
      /long-label\.json: line\.contents\.body\.contents\[0\]\.action\.label must be at most 40 characters \(is 41\)$/,
    )
    expect(renderMessage('long-label', { label: 'OK' }, { dir }).line.type).toBe('flex')
  })
})
