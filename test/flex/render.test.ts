import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { WIDEST, worstCaseVars } from '../../src/flex/flex-worst-case.ts'
import {
  loadMessageTemplate,
  renderLineMessage,
  renderMessage,
  TemplateError,
} from '../../src/flex/message-template.ts'
import { listFlexTemplateIds, loadFlexSample } from '../../src/flex/render.ts'

/** The local LINE stand-in loads http images; LINE itself does not. */
const STAND_IN = { allowHttpImages: true }

import { loadOpenApiValidator, messagingApiSpecPath } from '../../src/sandbox/openapi-validator.ts'
import { bubbleTemplate, templateFolder } from './template-folder.ts'

const api = loadOpenApiValidator(messagingApiSpecPath)
const push = api.findOperation('POST', '/v2/bot/message/push')!.op
const pushBody = (message: unknown) => ({
  to: 'U0123456789abcdef0123456789abcdef',
  messages: [message],
})

describe('flex-templates/', () => {
  const ids = listFlexTemplateIds()

  it('holds the member card, the purchase follow-up and the campaign sample', () => {
    expect(ids).toEqual(
      expect.arrayContaining(['member-card', 'purchase-follow-up', 'campaign-sample']),
    )
  })

  for (const id of ids) {
    it(`${id} renders with its sample into a message LINE's schema accepts, and an email`, () => {
      const { line, email } = renderMessage(id, loadFlexSample(id))
      expect(JSON.stringify(line)).not.toMatch(/\{\{|\$each|\$if/)
      expect(api.validateBody(push, pushBody(line))).toEqual([])
      expect(email.subject).not.toBe('')
      expect(email.html).toMatch(/^<!doctype html>/)
      expect(email.text).not.toMatch(/\{\{/)
    })
  }

  for (const id of ids) {
    for (const widest of WIDEST) {
      it(`${id} renders the largest variables its schema allows within LINE's limits (widest in ${widest})`, () => {
        const t = loadMessageTemplate(id)
        const worst = worstCaseVars(t.variables, loadFlexSample(id), widest)
        expect(worst.problems).toEqual([])
        const { line } = renderMessage(id, worst.vars) // throws past LINE's limits
        expect(api.validateBody(push, pushBody(line))).toEqual([])
      })
    }
  }

  it('describes each template', () => {
    const t = loadMessageTemplate('purchase-follow-up')
    expect(t).toMatchObject({ id: 'purchase-follow-up', category: 'marketing' })
    expect(t.description).not.toBe('')
    expect(loadMessageTemplate('campaign-sample').category).toBe('marketing')
    expect(loadMessageTemplate('purchase-follow-up')).toBe(t)
  })

  it('keeps the campaign message small (the bench sends 100k of them)', () => {
    const { line } = renderMessage('campaign-sample', loadFlexSample('campaign-sample'))
    expect(Buffer.byteLength(JSON.stringify(line))).toBeLessThan(3_000)
  })
})

describe('member-card', () => {
  const sample = loadFlexSample('member-card')

  it('takes the flat vars cards.service passes, points formatted or as an integer', () => {
    const { altText, contents } = renderLineMessage(
      'member-card',
      { ...sample, points: '1,250 pt' },
      STAND_IN,
    )
    expect(altText).toBe('山田 花子 様の会員証 / Member card')
    expect(JSON.stringify(contents)).toContain('"1,250 pt"')
    expect(JSON.stringify(renderLineMessage('member-card', sample, STAND_IN).contents)).toContain(
      '"1250"',
    )
  })

  it('shows the coupon only when there is a coupon code', () => {
    const { couponCode: _, couponTitle: __, ...noCoupon } = sample
    const without = JSON.stringify(renderMessage('member-card', noCoupon))
    expect(without).not.toMatch(/COUPON/)
    const withCoupon = JSON.stringify(renderMessage('member-card', sample))
    expect(withCoupon).toMatch(/COUPON[\s\S]*K7QWX2M4PA/)
  })

  it('shows the barcode image in the email too', () => {
    const { email } = renderMessage('member-card', sample)
    expect(email.html).toContain(`<img src="${String(sample.barcodeUrl)}"`)
  })

  it('goes without the barcode image when there is no barcodeUrl', () => {
    const { line, email } = renderMessage('member-card', { ...sample, barcodeUrl: undefined })
    expect(line.contents).not.toHaveProperty('hero')
    expect(JSON.stringify(line.contents)).toContain(String(sample.cardNumber))
    expect(email.html).not.toContain('<img')
    expect(email.text).not.toContain('Barcode')
  })

  it('returns a fresh object every time (callers may edit it)', () => {
    const a = renderLineMessage('member-card', sample, STAND_IN).contents
    const b = renderLineMessage('member-card', sample, STAND_IN).contents
    expect(a).not.toBe(b)
    expect(a).toEqual(b)
  })

  it('keeps http images only when told the local stand-in loads them', () => {
    const vars = { ...sample, barcodeUrl: 'http://localhost:3000/cards/t/barcode.png' }
    expect(renderLineMessage('member-card', vars, STAND_IN).contents).toMatchObject({
      hero: { url: vars.barcodeUrl },
    })
    expect(() => renderMessage('member-card', vars)).toThrow(
      /flex-templates\/member-card\.json: line\.contents\.hero\.url must be an https:\/\/ URL/,
    )
  })
})

describe('campaign-sample', () => {
  // The format "uri" takes "https://", which LINE refuses: the delivery would fail when sent.
  it('refuses a URL without a host when it is given, not when it is sent', () => {
    const sample = loadFlexSample('campaign-sample')
    for (const field of ['imageUrl', 'url']) {
      expect(() => renderMessage('campaign-sample', { ...sample, [field]: 'https://' })).toThrow(
        `vars/${field} must match pattern`,
      )
    }
  })
})

describe('purchase-follow-up', () => {
  // LINE shows the altText in the notification, on a locked phone's screen too.
  it('says neither the store nor the amount spent in its altText', () => {
    const sample = loadFlexSample('purchase-follow-up')
    const { altText } = renderLineMessage('purchase-follow-up', sample)
    expect(altText).toBe('ご購入ありがとうございました / Thank you for your purchase')
    expect(altText).not.toContain(String(sample.total))
    expect(altText).not.toContain(String(sample.storeName))
  })
})

describe('escaping', () => {
  const nasty = '"},{"type":"sparkle","x":"\\ {{cardNumber}} </script><b onclick="x">&amp;\'`='
  const sample = loadFlexSample('member-card')

  it('keeps a value as string content in the Flex JSON, never re-expanded', () => {
    const { line } = renderMessage('member-card', { ...sample, displayName: nasty })
    expect(line.altText).toBe(`${nasty} 様の会員証 / Member card`)
    const header = (line.contents as { header: { contents: { text: string }[] } }).header
    expect(header.contents[1]?.text).toBe(nasty)
    expect(api.validateBody(push, pushBody(line))).toEqual([])
  })

  it('HTML-escapes a value in the email HTML, attributes included, and not in the text', () => {
    const { email } = renderMessage('member-card', {
      ...sample,
      displayName: nasty,
      cardNumber: '2900000000018',
    })
    expect(email.html).not.toContain('</script>')
    expect(email.html).not.toContain('<b onclick')
    expect(email.html).toContain(
      '&quot;},{&quot;type&quot;:&quot;sparkle&quot;,&quot;x&quot;:&quot;\\ {{cardNumber}} &lt;/script&gt;&lt;b onclick&#x3D;&quot;x&quot;&gt;&amp;amp;&#x27;&#x60;&#x3D;',
    )
    expect(email.text).toContain(nasty)
  })

  it('keeps the subject on one line (no header injection)', async () => {
    const dir = await templateFolder({
      subject: {
        template: bubbleTemplate({
          body: [{ type: 'text', text: 'x' }],
          properties: { name: { type: 'string' } },
          email: { subject: 'Hello {{name}}' },
        }),
      },
    })
    const { email } = renderMessage(
      'subject',
      { name: 'A\r\nBcc: all@example.com\u2028x' },
      { dir },
    )
    expect(email.subject).toBe('Hello A Bcc: all@example.com x')
  })
})

describe('loading', () => {
  it('refuses ids that are not plain file names', () => {
    expect(() => loadMessageTemplate('../package')).toThrow(/kebab-case/)
  })

  it('names the file and the field of a template of the wrong shape', async () => {
    const good = bubbleTemplate({ body: [] })
    const dir = await templateFolder({
      broken: { template: { ...good, line: { contents: { type: 'bubble' } } } },
      notjson: { template: null, rawTemplate: '{ "line": ' },
    })
    const error = catchError(() => loadMessageTemplate('broken', dir))
    expect(error).toBeInstanceOf(TemplateError)
    expect(error.file).toMatch(/broken\.json$/)
    expect(error.message).toMatch(/broken\.json: line\.altText/)
    expect(() => loadMessageTemplate('notjson', dir)).toThrow(/notjson\.json: .*JSON/)
  })

  it('refuses an email HTML that writes a value unescaped ({{{x}}} or {{&x}}), naming the file and where', async () => {
    const withHtml = (html: string[]) => ({
      template: bubbleTemplate({
        body: [{ type: 'text', text: 'x' }],
        properties: { name: { type: 'string' }, note: { type: 'string' } },
        email: { html, text: '{{{name}}}' },
      }),
    })
    const dir = await templateFolder({
      triple: withHtml(['<p>Hello</p>', '<p>{{{name}}}</p>']),
      ampersand: withHtml(['{{#if note}}<p>{{& note}}</p>{{/if}}']),
      escaped: withHtml(['<p>{{name}}</p>', '<style>p { color: red }</style>']),
    })
    const triple = catchError(() => loadMessageTemplate('triple', dir))
    expect(triple).toBeInstanceOf(TemplateError)
    expect(triple.message).toMatch(
      /triple\.json: email\.html line 2: \{\{\{name\}\}\} writes name unescaped: write \{\{name\}\}, which HTML-escapes it$/,
    )
    expect(() => loadMessageTemplate('ampersand', dir)).toThrow(
      /ampersand\.json: email\.html line 1: \{\{& note\}\} writes note unescaped/,
    )
    // The text version is never escaped: {{{name}}} there is {{name}}.
    const { email } = renderMessage('escaped', { name: '<b>', note: '' }, { dir })
    expect(email).toMatchObject({
      html: '<p>&lt;b&gt;</p>\n<style>p { color: red }</style>',
      text: '<b>',
    })
  })

  it('reads a template and its sample saved with a byte-order mark (Windows editors write one)', async () => {
    const template = bubbleTemplate({
      body: [{ type: 'text', text: 'Hi {{name}}' }],
      properties: { name: { type: 'string' } },
      required: ['name'],
    })
    const dir = await templateFolder({
      bom: { template: null, rawTemplate: `\uFEFF${JSON.stringify(template)}` },
    })
    writeFileSync(join(dir, 'bom.sample.json'), `\uFEFF${JSON.stringify({ name: 'Yui' })}`)
    const vars = loadFlexSample('bom', dir)
    expect(vars).toEqual({ name: 'Yui' })
    const line = renderLineMessage('bom', vars, { dir })
    expect(JSON.stringify(line)).toContain('Hi Yui')
  })
})

function catchError(fn: () => unknown): TemplateError {
  try {
    fn()
  } catch (error) {
    return error as TemplateError
  }
  throw new Error('expected an error')
}
