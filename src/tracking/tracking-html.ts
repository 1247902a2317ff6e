import { Parser } from 'htmlparser2'

const LINK_TAGS = new Set(['a', 'area'])

function escapeAttribute(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('"', '&quot;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
}

/** `http(s)://…` as a normalised absolute URL (what a browser would follow); null otherwise. */
export function trackableUrl(href: string): string | null {
  const trimmed = href.trim()
  if (!/^https?:\/\//i.test(trimmed)) return null
  try {
    return new URL(trimmed).href
  } catch {
    return null
  }
}

/**
 * Rewrites the `href` of every `<a>`/`<area>` whose target is http(s) through `track` (given the
 * decoded, normalised URL; null leaves the link as written) and inserts `ending` (the unsubscribe link and the open pixel) before
 * `</body>`, or at the end without one.
 * The HTML is tokenised by htmlparser2, so comments, scripts and attribute quoting are read as
 * a browser reads them; everything else is copied through byte for byte.
 */
export function rewriteEmailHtml(
  html: string,
  track: (url: string) => string | null,
  ending: string,
) {
  const edits: { start: number; end: number; text: string }[] = []
  let tag = ''
  let hrefSeen = false
  let bodyEnd = -1
  const parser = new Parser(
    {
      onopentagname(name) {
        tag = name
        hrefSeen = false
      },
      onattribute(name, value) {
        // A browser follows the first href of a tag; later duplicates are ignored.
        if (name !== 'href' || hrefSeen || !LINK_TAGS.has(tag)) return
        hrefSeen = true
        const url = trackableUrl(value)
        const tracked = url === null ? null : track(url)
        if (tracked === null) return
        edits.push({
          start: parser.startIndex,
          end: parser.endIndex,
          text: `href="${escapeAttribute(tracked)}"`,
        })
      },
      onclosetag(name, implied) {
        if (name === 'body' && !implied && bodyEnd < 0) bodyEnd = parser.startIndex
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  )
  parser.end(html)

  const at = bodyEnd < 0 ? html.length : bodyEnd
  edits.push({ start: at, end: at, text: ending })
  let out = ''
  let from = 0
  for (const edit of edits.sort((a, b) => a.start - b.start)) {
    out += html.slice(from, edit.start) + edit.text
    from = edit.end
  }
  return out + html.slice(from)
}

export function pixelTag(src: string): string {
  return `<img src="${escapeAttribute(src)}" width="1" height="1" alt="">`
}

/**
 * The unsubscribe link shown at the end of the HTML body: many mail apps show no button for the
 * List-Unsubscribe header, and the HTML part is what most people read.
 */
export function unsubscribeFooterTag(href: string): string {
  return (
    '<p style="margin:16px 0;font-size:12px;color:#888888;text-align:center">' +
    `<a href="${escapeAttribute(href)}" style="color:#888888">` +
    '配信停止 / Unsubscribe</a></p>'
  )
}
