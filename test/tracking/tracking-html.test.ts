import { DomUtils, parseDocument } from 'htmlparser2'
import { describe, expect, it } from 'vitest'
import { rewriteEmailHtml } from '../../src/tracking/tracking-html.ts'

const track = (url: string) => `https://kizuna.example/r/${encodeURIComponent(url)}`
const PIXEL = '<img src="https://kizuna.example/o/T" width="1" height="1" alt="">'

const links = (html: string) =>
  DomUtils.getElementsByTagName('a', parseDocument(html)).map((a) => a.attribs.href)

describe('rewriteEmailHtml', () => {
  it('rewrites http(s) links and leaves mailto, tel, anchors and relative links alone', () => {
    const html = `<!doctype html><html><body>
      <a href="https://shop.example/sale?a=1&amp;b=2">Sale</a>
      <a class="btn" href='http://shop.example/x'>X</a>
      <a href=HTTPS://Shop.Example/Upper>U</a>
      <a href="mailto:help@shop.example">Mail</a>
      <a href="tel:+81-3-1234-5678">Call</a>
      <a href="#top">Top</a>
      <a href="/relative">Rel</a>
      <a name="no-href">None</a>
      <!-- <a href="https://commented.example/"> -->
      <p title='<a href="https://not-a-link.example/">'>text</p>
    </body></html>`
    const out = rewriteEmailHtml(html, track, PIXEL)
    expect(links(out)).toEqual([
      track('https://shop.example/sale?a=1&b=2'),
      track('http://shop.example/x'),
      track('https://shop.example/Upper'),
      'mailto:help@shop.example',
      'tel:+81-3-1234-5678',
      '#top',
      '/relative',
      undefined,
    ])
    expect(out).toContain('<!-- <a href="https://commented.example/"> -->')
    expect(out).toContain(`<p title='<a href="https://not-a-link.example/">'>text</p>`)
    expect(out).toContain('class="btn"')
  })

  it('puts the open pixel just before </body>, or at the end without one', () => {
    const withBody = rewriteEmailHtml('<html><body><p>Hi</p></BODY></html>', track, PIXEL)
    expect(withBody).toBe(`<html><body><p>Hi</p>${PIXEL}</BODY></html>`)
    const images = DomUtils.getElementsByTagName('img', parseDocument(withBody))
    expect(images[0]?.attribs).toEqual({
      src: 'https://kizuna.example/o/T',
      width: '1',
      height: '1',
      alt: '',
    })
    expect(rewriteEmailHtml('<p>fragment</p>', track, PIXEL)).toBe(`<p>fragment</p>${PIXEL}`)
  })

  it('copies everything else through unchanged', () => {
    const html = '<table><tr><td style="color:red">¥1,000 &amp; 送料無料</td></tr></table>'
    expect(rewriteEmailHtml(html, track, '')).toBe(html)
  })

  it('rewrites only the first href of a link, as a browser follows only that one', () => {
    const out = rewriteEmailHtml(
      '<a href="https://a.example/" href="https://b.example/">x</a>',
      track,
      '',
    )
    expect(out).toBe(`<a href="${track('https://a.example/')}" href="https://b.example/">x</a>`)
  })
})
