import { html } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'
import type { ConsentCategory } from '../consent/consent.schemas.ts'

type Html = HtmlEscapedString | Promise<HtmlEscapedString>

const WHAT: Record<ConsentCategory, string> = {
  marketing: 'offers and news / お得な情報やお知らせ',
  transactional: 'receipts and account notices / レシートや保証期限などのご案内',
}

/** The unsubscribe pages. `html` escapes every interpolated value. */
function layout(title: string, body: Html): Html {
  return html`<!doctype html>
    <html lang="ja">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <meta name="robots" content="noindex" />
        <title>${title}</title>
        <style>
          body { font-family: system-ui, sans-serif; max-width: 28rem; margin: 2rem auto; padding: 0 1rem; }
          button { font-size: 1.1rem; padding: 0.5rem; width: 100%; margin: 0.25rem 0; }
        </style>
      </head>
      <body>
        <h1>${title}</h1>
        ${body}
      </body>
    </html>`
}

/** GET: asks first (mail scanners open links; only the POST unsubscribes). */
export function confirmPage(action: string, category: ConsentCategory): Html {
  return layout(
    'Unsubscribe / 配信停止',
    html`<p>Stop emails with ${WHAT[category]}?</p>
      <form method="post" action="${action}">
        <input type="hidden" name="List-Unsubscribe" value="One-Click" />
        <button type="submit">Unsubscribe / 配信を停止する</button>
      </form>`,
  )
}

export function donePage(category: ConsentCategory): Html {
  return layout(
    'Unsubscribed / 配信停止',
    html`<p>You will no longer receive emails with ${WHAT[category]}.</p>
      <p>メールの配信を停止しました。</p>`,
  )
}

export function problemPage(title: string, message: string): Html {
  return layout(title, html`<p>${message}</p>`)
}
