import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Browser, Frame, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listFlexTemplateIds, loadFlexSample } from '../../src/flex/render.ts'
import { launchChromium } from '../support/browser.ts'
import { cli } from '../support/cli.ts'
import { bubbleTemplate, templateFolder, text } from './template-folder.ts'

describe('kizuna flex validate', () => {
  it('passes every template in flex-templates/', async () => {
    const { code, stdout, stderr } = await cli(['flex', 'validate'])
    expect(stderr).toContain('0 with errors')
    expect(code).toBe(0)
    const lines = stdout.trim().split('\n')
    expect(lines).toEqual(listFlexTemplateIds().map((id) => `ok    ${id}`))
  })

  it('fails on a broken folder, naming each file and JSON path', async () => {
    const good = bubbleTemplate({
      properties: { name: { type: 'string', minLength: 1, maxLength: 100 } },
      required: ['name'],
      body: [text('{{name}}')],
    })
    const dir = await templateFolder({
      good: { template: good, sample: { name: 'A' } },
      'long-label': {
        template: bubbleTemplate({
          properties: { label: { type: 'string' } },
          body: [],
          footer: {
            type: 'box',
            layout: 'vertical',
            contents: [
              { type: 'button', action: { type: 'message', label: '{{label}}', text: 'x' } },
            ],
          },
        }),
        sample: { label: 'This label is far longer than LINE allows for a button' },
      },
      'bad-sample': { template: good, sample: { name: 42 } },
      'line-schema': {
        template: bubbleTemplate({ body: [{ type: 'text', text: 'x', weight: 'heavy' }] }),
        sample: {},
      },
      'no-sample': { template: good },
      'not-json': { template: null, rawTemplate: '{ "line": ', sample: {} },
    })
    const { code, stdout } = await cli(['flex', 'validate', '--dir', dir])
    expect(code).toBe(1)
    const line = (id: string) =>
      stdout.split('\n').find((l) => l.includes(` ${id} `) || l.endsWith(` ${id}`))
    expect(line('good')).toBe('ok    good')
    expect(line('long-label')).toContain(
      `${join(dir, 'long-label.json')}: line.contents.footer.contents[0].action.label must be at most 40 characters`,
    )
    expect(line('long-label')).not.toContain("LINE's schema")
    expect(line('bad-sample')).toContain(
      `${join(dir, 'bad-sample.json')}: vars/name must be string`,
    )
    expect(line('line-schema')).toMatch(
      /line-schema\.json: line\.contents\.body\.contents\[0\]\.weight must be one of .*LINE's schema/,
    )
    expect(line('no-sample')).toMatch(/no-sample\.json: in .*no-sample\.sample\.json; .*ENOENT/)
    expect(line('not-json')).toMatch(/^FAIL {2}not-json {2}.*not-json\.json: .*JSON/)
  })
})

describe('kizuna flex validate: the largest variables the schema allows', () => {
  /** A bubble with one row per item of `lines`, as purchase-follow-up has. */
  const listTemplate = (lines: Record<string, unknown>) =>
    bubbleTemplate({
      properties: {
        lines: {
          type: 'array',
          ...lines,
          items: {
            type: 'object',
            required: ['name'],
            properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
          },
        },
      },
      body: [{ $each: 'lines', as: 'line', do: text('{{line.name}}') }],
    })

  it('fails a bubble the schema lets grow past 30 KB though its sample fits, and unbounded vars', async () => {
    const dir = await templateFolder({
      'forty-lines': {
        template: listTemplate({ maxItems: 40 }),
        sample: { lines: [{ name: 'Tea' }] },
      },
      'ten-lines': {
        template: listTemplate({ maxItems: 10 }),
        sample: { lines: [{ name: 'Tea' }] },
      },
      'no-max-items': { template: listTemplate({}), sample: { lines: [{ name: 'Tea' }] } },
      // The same 40 lines with their item schema in $defs: built from it, not copied from the sample.
      'ref-lines': {
        template: (() => {
          const t = listTemplate({ maxItems: 40 })
          const lines = t.variables.properties.lines as { items: unknown }
          const $defs = { line: lines.items }
          lines.items = { $ref: '#/$defs/line' }
          return { ...t, variables: { ...t.variables, $defs } }
        })(),
        sample: { lines: [{ name: 'Tea' }] },
      },
      'no-max-length': {
        template: bubbleTemplate({
          properties: {
            name: { type: 'string' },
            code: { type: 'string', pattern: '^[0-9]{4,8}$' },
          },
          body: [text('{{name}} {{code}}')],
        }),
        sample: { name: 'A', code: '1234' },
      },
    })
    const { code, stdout } = await cli(['flex', 'validate', '--dir', dir])
    expect(code).toBe(1)
    const line = (id: string) =>
      stdout.split('\n').find((l) => l.includes(` ${id} `) || l.endsWith(` ${id}`))
    expect(line('forty-lines')).toMatch(
      /forty-lines\.json: line\.contents is \d+ bytes of JSON; LINE takes at most 30000 \(with the largest variables the schema allows\)/,
    )
    expect(line('ref-lines')).toMatch(
      /ref-lines\.json: line\.contents is \d+ bytes of JSON; LINE takes at most 30000 \(with the largest variables the schema allows\)/,
    )
    expect(line('ten-lines')).toBe('ok    ten-lines')
    expect(line('no-max-items')).toContain('vars/lines has no maxItems')
    expect(line('no-max-length')).toContain('vars/name has no maxLength')
    // A pattern that bounds the length is a bound.
    expect(line('no-max-length')).not.toContain('vars/code')
  })

  it('fails an altText the schema lets grow past 1500 UTF-16 units, which the widest in bytes does not', async () => {
    const template = bubbleTemplate({
      properties: { name: { type: 'string', minLength: 1, maxLength: 1000 } },
      body: [text('{{name}}')],
    })
    const dir = await templateFolder({
      'long-alt': {
        // 1000 emoji are 2000 units; 1000 control characters (6 bytes each) only 1000.
        template: { ...template, line: { ...template.line, altText: '{{name}}' } },
        sample: { name: 'Tea' },
      },
    })
    const { code, stdout } = await cli(['flex', 'validate', '--dir', dir])
    expect(code).toBe(1)
    expect(stdout).toMatch(
      /long-alt\.json: line\.altText must be 1 to 1500 characters \(is 2000\) \(with the largest variables the schema allows\)/,
    )
  })

  it('fills the URLs a sample leaves out: a bubble of long links fails though its sample has none', async () => {
    const item = {
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 20 },
        imageUrl: { type: 'string', format: 'uri', pattern: '^https://', maxLength: 2000 },
        url: { type: 'string', format: 'uri', pattern: '^https://', maxLength: 1000 },
      },
    }
    const row = {
      type: 'box',
      layout: 'horizontal',
      action: { $if: 'item.url', do: { type: 'uri', label: 'View', uri: '{{item.url}}' } },
      contents: [
        { $if: 'item.imageUrl', do: { type: 'image', url: '{{item.imageUrl}}' } },
        text('{{item.name}}'),
      ],
    }
    const template = bubbleTemplate({
      properties: { items: { type: 'array', maxItems: 10, items: item } },
      body: [{ $each: 'items', as: 'item', do: row }],
    })
    const dir = await templateFolder({
      // 10 rows of a 2000-character image URL and a 1000-character link: over 30 KB.
      'no-urls': { template, sample: { items: [{ name: 'Tea' }] } },
      'some-urls': {
        template,
        sample: { items: [{ name: 'Tea', url: 'https://a.example/tea' }, { name: 'Cup' }] },
      },
    })
    const { code, stdout } = await cli(['flex', 'validate', '--dir', dir])
    expect(code).toBe(1)
    for (const id of ['no-urls', 'some-urls']) {
      expect(stdout.split('\n').find((l) => l.includes(` ${id} `))).toMatch(
        /\.json: line\.contents is \d+ bytes of JSON; LINE takes at most 30000 \(with the largest variables the schema allows\)/,
      )
    }
  })
})

describe('kizuna flex validate: the smallest variables the schema allows', () => {
  const bubble = (body: unknown[]) => ({
    type: 'bubble',
    body: { type: 'box', layout: 'vertical', contents: body },
  })

  it('fails an empty text, an empty carousel and a placeholder of an absent var, naming the var', async () => {
    const nickname = { type: 'string', maxLength: 50 }
    const coupon = {
      type: 'object',
      required: ['code'],
      properties: { code: { type: 'string', minLength: 1, maxLength: 10 } },
    }
    const carousel = bubbleTemplate({
      properties: {
        items: {
          type: 'array',
          maxItems: 5,
          items: {
            type: 'object',
            required: ['name'],
            properties: { name: { type: 'string', minLength: 1, maxLength: 20 } },
          },
        },
      },
      required: ['items'],
      body: [],
    })
    carousel.line.contents = {
      type: 'carousel',
      contents: [{ $each: 'items', as: 'item', do: bubble([text('{{item.name}}')]) }],
    } as unknown as typeof carousel.line.contents
    const dir = await templateFolder({
      nickname: {
        template: bubbleTemplate({
          properties: { nickname },
          required: ['nickname'],
          body: [text('{{nickname}}')],
        }),
        sample: { nickname: 'Hana' },
      },
      'maybe-nickname': {
        template: bubbleTemplate({ properties: { nickname }, body: [text('Hi {{nickname}}')] }),
        sample: { nickname: 'Hana' },
      },
      carousel: { template: carousel, sample: { items: [{ name: 'Tea' }] } },
      coupon: {
        template: bubbleTemplate({ properties: { coupon }, body: [text('Code: {{coupon.code}}')] }),
        sample: { coupon: { code: 'K7Q' } },
      },
      'coupon-if': {
        template: bubbleTemplate({
          properties: { coupon },
          body: [text('Thanks'), { $if: 'coupon', do: text('Code: {{coupon.code}}') }],
        }),
        sample: { coupon: { code: 'K7Q' } },
      },
    })
    const { code, stdout } = await cli(['flex', 'validate', '--dir', dir])
    expect(code).toBe(1)
    const line = (id: string) =>
      stdout.split('\n').find((l) => l.includes(` ${id} `) || l.endsWith(` ${id}`))
    expect(line('nickname')).toContain(
      `${join(dir, 'nickname.json')}: line.contents.body.contents[0].text must be non-empty text (when vars/nickname is "")`,
    )
    expect(line('maybe-nickname')).toContain(
      'maybe-nickname.json: line.contents.body.contents[0].text {{nickname}} has no value (when vars/nickname is absent)',
    )
    expect(line('carousel')).toContain(
      'carousel.json: line.contents.contents must hold 1 to 12 bubbles (has 0) (when vars/items is empty)',
    )
    expect(line('coupon')).toContain(
      'coupon.json: line.contents.body.contents[0].text {{coupon.code}} has no value (when vars/coupon is absent)',
    )
    expect(line('coupon-if')).toBe('ok    coupon-if')
  })
})

describe('kizuna flex preview', () => {
  let browser: Browser
  beforeAll(async () => {
    browser = await launchChromium()
  })
  afterAll(async () => {
    await browser?.close()
  })

  async function open(file: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } })
    await page.goto(pathToFileURL(file).href)
    return page
  }

  it('writes a page that shows the bubble as LINE would, next to the email', async () => {
    const dir = await templateFolder({})
    const out = join(dir, 'card.html')
    const { code, stdout } = await cli(['flex', 'preview', 'member-card', '--out', out])
    expect(code).toBe(0)
    expect(stdout.trim()).toBe(out)
    const page = await open(out)
    const bubble = page.locator('.pv-line .fx-bubble')
    await expect(bubble.textContent()).resolves.toMatch(
      /MEMBER CARD 会員証[\s\S]*山田 花子[\s\S]*2900000000018/,
    )
    const name = page.locator('.pv-line .fx-header .fx-text').nth(1)
    await expect(name.textContent()).resolves.toBe('山田 花子')
    const nameBox = (await name.boundingBox())!
    expect(nameBox.height).toBeGreaterThan(20) // xl text (22px), drawn and visible
    await expect(name.isVisible()).resolves.toBe(true)
    const box = (await bubble.boundingBox())!
    expect(box.width).toBe(300) // a mega bubble
    const hero = (await page.locator('.fx-hero .fx-image-frame').boundingBox())!
    expect(hero.width).toBe(300)
    expect(hero.height).toBeCloseTo(200, 0) // aspectRatio 3:2
    await expect(page.locator('#email-subject').textContent()).resolves.toBe(
      '山田 花子 様の会員証 / Your member card',
    )
    const email = page.frameLocator('#email-html')
    await expect(email.locator('body').textContent()).resolves.toContain('K7QWX2M4PA')
    await expect(email.locator('img').getAttribute('src')).resolves.toBe(
      'https://kizuna.example.com/cards/sample-token/barcode.png',
    )
    await expect(page.locator('#email-text').textContent()).resolves.toContain(
      'ポイント Points: 1250',
    )
    await page.close()
  })

  it('takes --vars and draws buttons at LINE size', async () => {
    const dir = await templateFolder({})
    const vars = join(dir, 'vars.json')
    const sample = loadFlexSample('campaign-sample')
    writeFileSync(
      vars,
      JSON.stringify({ ...sample, displayName: '佐藤 一郎', headline: 'Flash sale' }),
    )
    const out = join(dir, 'campaign.html')
    const { code } = await cli(['flex', 'preview', 'campaign-sample', '--vars', vars, '--out', out])
    expect(code).toBe(0)
    const page = await open(out)
    await expect(page.locator('.pv-line .fx-body').textContent()).resolves.toMatch(
      /佐藤 一郎 様\s*Flash sale/,
    )
    const button = page.locator('.fx-button')
    expect((await button.boundingBox())?.height).toBe(52)
    await expect(button.getAttribute('href')).resolves.toBe(String(sample.url))
    await page.close()
  })

  it('renders hostile values as text: no live markup, no script, no javascript: link', async () => {
    const evil = `<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>`
    const dir = await templateFolder({
      xss: {
        template: bubbleTemplate({
          properties: { evil: { type: 'string' }, link: { type: 'string' } },
          body: [
            text('{{evil}}'),
            { type: 'text', text: 'open', action: { type: 'uri', label: 'x', uri: '{{link}}' } },
          ],
          footer: {
            type: 'box',
            layout: 'vertical',
            contents: [{ type: 'button', action: { type: 'uri', label: 'Go', uri: '{{link}}' } }],
          },
          email: {
            subject: '{{evil}}',
            html: '<p id="evil">{{evil}}</p>',
            text: '{{evil}} {{link}}',
          },
        }),
        sample: { evil, link: "javascript:document.title='pwned'" },
      },
    })
    const out = join(dir, 'xss.html')
    const { code, stdout, stderr } = await cli([
      'flex',
      'preview',
      'xss',
      '--dir',
      dir,
      '--out',
      out,
    ])
    expect(code).toBe(1) // the javascript: uri breaks LINE's rules, and the page says so
    expect(stdout.trim()).toBe(out)
    expect(stderr).toContain(
      'line.contents.footer.contents[0].action.uri must use http: https: line: tel:',
    )
    expect(existsSync(out)).toBe(true)

    const page = await open(out)
    await expect(page.locator('.pv-problems').textContent()).resolves.toContain(
      'line.contents.body.contents[1].action.uri',
    )
    await expect(page.locator('.pv-line .fx-text').first().textContent()).resolves.toBe(evil)
    await expect(page.locator('#email-subject').textContent()).resolves.toBe(evil)
    const email = page.frameLocator('#email-html')
    await expect(email.locator('#evil').textContent()).resolves.toBe(evil)
    // Evaluated in the page (a string: this project type-checks without the DOM library).
    const LIVE = `({
      scripts: document.querySelectorAll('script').length,
      images: document.querySelectorAll('img[src="x"]').length,
      handlers: [...document.querySelectorAll('*')].filter((e) =>
        [...e.attributes].some((a) => a.name.startsWith('on'))).length,
      jsLinks: document.querySelectorAll('[href^="javascript:" i]').length,
      title: document.title,
    })`
    const live = (root: Page | Frame) => root.evaluate(LIVE)
    expect(await live(page)).toEqual({
      scripts: 0,
      images: 0,
      handlers: 0,
      jsLinks: 0,
      title: 'xss · Kizuna preview',
    })
    const frame = page.frames().find((f) => f !== page.mainFrame())!
    expect(await live(frame)).toMatchObject({ scripts: 0, images: 0, handlers: 0, jsLinks: 0 })
    expect(await page.locator('.pv-line [data-action]').count()).toBe(2)
    await page.close()
  })
})
