import { describe, expect, it } from 'vitest'
import { renderFlexHtml } from '../../src/flex/flex-html.ts'
import { renderMessage } from '../../src/flex/message-template.ts'
import { loadFlexSample } from '../../src/flex/render.ts'

const bubble = (contents: unknown[], extra: Record<string, unknown> = {}) => ({
  type: 'bubble',
  ...extra,
  body: { type: 'box', layout: 'vertical', contents },
})

describe('renderFlexHtml', () => {
  it('escapes text, span and label content', () => {
    const html = renderFlexHtml(
      bubble([
        { type: 'text', text: '<img src=x onerror=alert(1)>' },
        { type: 'text', contents: [{ type: 'span', text: '</p><script>alert(2)</script>' }] },
        { type: 'button', action: { type: 'message', label: '<b>x</b>', text: 'y' } },
      ]),
    )
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;')
    expect(html).toContain('&lt;/p&gt;&lt;script&gt;alert(2)&lt;/script&gt;')
    expect(html).toContain('&lt;b&gt;x&lt;/b&gt;')
    expect(html).not.toMatch(/<img src=x|<script|<b>/)
  })

  it('turns actions into inert data attributes and links only for allowed schemes', () => {
    const html = renderFlexHtml(
      bubble([
        { type: 'button', action: { type: 'uri', label: 'a', uri: 'javascript:alert(1)' } },
        {
          type: 'button',
          action: { type: 'uri', label: 'b', uri: 'https://shop.example/?a=1&b="2"' },
        },
        { type: 'button', action: { type: 'postback', label: 'c', data: "x');alert('pwned" } },
      ]),
    )
    expect(html).not.toContain('href="javascript:')
    expect(html).toContain('href="https://shop.example/?a=1&amp;b=&quot;2&quot;"')
    expect(html).toContain('data-action="{&quot;type&quot;:&quot;postback&quot;')
    expect(html).not.toMatch(/\son[a-z]+=/i)
  })

  it('drops style values that are not colours, lengths or keywords', () => {
    const html = renderFlexHtml(
      bubble([
        { type: 'text', text: 'x', color: 'red;background:url(javascript:alert(1))', size: '12px' },
        {
          type: 'box',
          layout: 'vertical',
          contents: [],
          backgroundColor: '#ff0000',
          width: 'expression(1)',
        },
      ]),
    )
    expect(html).not.toMatch(/url\(|expression|red;/)
    expect(html).toContain('font-size:12px')
    expect(html).toContain('background-color:#ff0000')
  })

  it('ignores alignment keywords that are not its own (constructor, toString)', () => {
    const html = renderFlexHtml(
      bubble([
        {
          type: 'box',
          layout: 'horizontal',
          contents: [
            { type: 'text', text: 'a', gravity: 'constructor' },
            { type: 'image', url: 'https://img.example/a.png', align: 'toString' },
            { type: 'text', text: 'b', gravity: 'bottom' },
          ],
        },
      ]),
    )
    expect(html).not.toMatch(/function|native code|align-self:[^;]*(constructor|Object)/)
    expect(html).not.toMatch(/justify-content:(?!center)/)
    expect(html).toContain('align-self:flex-end')
  })

  it('keeps only http(s) image sources', () => {
    const html = renderFlexHtml(
      bubble([
        { type: 'image', url: 'javascript:alert(1)' },
        { type: 'image', url: 'https://img.example/a.png' },
      ]),
    )
    expect(html.match(/<img /g)).toHaveLength(1)
    expect(html).toContain('src="https://img.example/a.png"')
  })

  it('draws carousels and each template', () => {
    const carousel = renderFlexHtml({ type: 'carousel', contents: [bubble([]), bubble([])] })
    expect(carousel.match(/class="fx-bubble/g)).toHaveLength(2)
    const { line } = renderMessage('purchase-follow-up', loadFlexSample('purchase-follow-up'))
    const html = renderFlexHtml(line.contents)
    expect(html).toContain('おすすめ / You may also like')
    expect(html).toContain('href="https://kizuna.example.com/products/TS-0142"')
  })
})
