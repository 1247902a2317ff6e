import { describe, expect, it } from 'vitest'
import { loadMessageTemplate, renderMessage } from '../../src/flex/message-template.ts'
import { loadFlexSample } from '../../src/flex/render.ts'
import { bubbleTemplate, templateFolder, text } from './template-folder.ts'

type Box = { contents: { type: string; text?: string; contents?: { text?: string }[] }[] }
const bodyOf = (contents: unknown) => (contents as { body: Box }).body

describe('purchase-follow-up', () => {
  const sample = loadFlexSample('purchase-follow-up')
  const texts = (vars: Record<string, unknown>) =>
    JSON.stringify(renderMessage('purchase-follow-up', vars).line.contents)

  it('repeats one row per receipt line, with nested {{line.name}}', () => {
    const lines = [
      { name: 'Apple', quantity: 3, amount: '¥300' },
      { name: 'Pear', quantity: 1, amount: '¥150' },
      { name: 'Fig', quantity: 2, amount: '¥400' },
    ]
    const { line, email } = renderMessage('purchase-follow-up', { ...sample, lines })
    const rows = bodyOf(line.contents).contents.filter(
      (c) => c.type === 'box' && c.contents?.[1]?.text?.startsWith('×'),
    )
    expect(rows.map((r) => r.contents?.map((c) => c.text))).toEqual([
      ['Apple', '×3', '¥300'],
      ['Pear', '×1', '¥150'],
      ['Fig', '×2', '¥400'],
    ])
    expect(email.text).toContain('- Apple ×3  ¥300\n- Pear ×1  ¥150\n- Fig ×2  ¥400\n')
    expect(email.html.match(/<tr style="font-size:14px">/g)).toHaveLength(3)
  })

  it('shows "You may also like" only when there are recommendations', () => {
    expect(texts(sample)).toContain('You may also like')
    expect(texts(sample)).toContain('リネンシャツ / Linen shirt')
    for (const recommendations of [[], undefined]) {
      const vars = { ...sample, recommendations }
      const { line, email } = renderMessage('purchase-follow-up', vars)
      expect(JSON.stringify(line)).not.toContain('You may also like')
      expect(email.html).not.toContain('You may also like')
      expect(email.text).not.toContain('You may also like')
    }
  })

  it('drops an optional image and link of a recommendation ($if on a property)', () => {
    const recommendations = [{ sku: 'A', name: 'Plain', price: '¥1' }]
    const json = texts({ ...sample, recommendations })
    expect(json).toContain('"Plain"')
    expect(json).not.toMatch(/"type":"image"|"action"/)
    const withLink = texts({
      ...sample,
      recommendations: [{ ...recommendations[0], url: 'https://shop.example/a' }],
    })
    expect(withLink).toContain(
      '"action":{"type":"uri","label":"詳しく見る / View","uri":"https://shop.example/a"}',
    )
  })
})

describe('directives', () => {
  it('nests $each, reads outer bindings and list indexes, and uses else', async () => {
    const dir = await templateFolder({
      nested: {
        template: bubbleTemplate({
          properties: { groups: { type: 'array' }, shop: { type: 'string' }, vip: {} },
          body: [
            {
              $each: 'groups',
              as: 'g',
              do: {
                type: 'box',
                layout: 'vertical',
                contents: [
                  { $each: 'g.items', as: 'i', do: text('{{shop}}/{{g.title}}/{{i.name}}') },
                  { $if: 'g.items', do: text('has items'), else: text('empty group') },
                ],
              },
            },
            text('first: {{groups.0.title}}'),
            { $if: 'vip', do: text('VIP'), else: text('regular') },
          ],
        }),
      },
    })
    const vars = {
      shop: 'S',
      groups: [
        { title: 'A', items: [{ name: 'a1' }, { name: 'a2' }] },
        { title: 'B', items: [] },
      ],
      vip: 0,
    }
    const body = bodyOf(renderMessage('nested', vars, { dir }).line.contents)
    expect(body.contents.map((c) => c.text ?? c.contents?.map((t) => t.text))).toEqual([
      ['S/A/a1', 'S/A/a2', 'has items'],
      ['empty group'],
      'first: A',
      'regular',
    ])
  })

  it('names the template and path of an undeclared or malformed placeholder', async () => {
    const dir = await templateFolder({
      undeclared: { template: bubbleTemplate({ body: [text('Hi {{nmae}}')] }) },
      malformed: {
        template: bubbleTemplate({ properties: { a: {} }, body: [text('Hi {{a b}}')] }),
      },
      unclosed: { template: bubbleTemplate({ properties: { a: {} }, body: [text('Hi {{a')] }) },
      stray: {
        template: bubbleTemplate({ properties: { a: {} }, body: [{ $each: 'a', do: text('x') }] }),
      },
      unknown: {
        template: bubbleTemplate({ body: [{ type: 'text', text: 'x', $iff: 'a' }] }),
      },
    })
    const body = 'line.contents.body.contents[0]'
    expect(() => loadMessageTemplate('undeclared', dir)).toThrow(
      new RegExp(`undeclared\\.json: ${esc(body)}\\.text \\{\\{nmae\\}\\}: "nmae" is not declared`),
    )
    expect(() => loadMessageTemplate('malformed', dir)).toThrow(
      new RegExp(`malformed\\.json: ${esc(body)}\\.text \\{\\{a b\\}\\} is not a variable path`),
    )
    expect(() => loadMessageTemplate('unclosed', dir)).toThrow(
      /unclosed\.json: .*\.text has a "\{\{"/,
    )
    expect(() => loadMessageTemplate('stray', dir)).toThrow(
      new RegExp(`stray\\.json: ${esc(body)}\\.as must name the item`),
    )
    expect(() => loadMessageTemplate('unknown', dir)).toThrow(
      new RegExp(`unknown\\.json: ${esc(body)}\\.\\$iff is not a directive`),
    )
  })

  it('names the path of a placeholder without a value', async () => {
    const dir = await templateFolder({
      optional: {
        template: bubbleTemplate({
          properties: { note: { type: 'string' } },
          body: [text('{{note}}')],
        }),
      },
    })
    expect(() => renderMessage('optional', {}, { dir })).toThrow(
      /optional\.json: line\.contents\.body\.contents\[0\]\.text \{\{note\}\} has no value/,
    )
  })
})

function esc(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
