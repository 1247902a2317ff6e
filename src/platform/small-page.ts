import { html } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>

/**
 * A small page for shoppers (account link, unsubscribe): one column, no referrer, not indexed.
 * `html` escapes every interpolated value; `footer` follows the body.
 */
export function smallPage(title: string, body: Html, footer: Html | '' = ''): Html {
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
          input, button { font-size: 1.1rem; padding: 0.5rem; width: 100%; box-sizing: border-box; margin: 0.25rem 0; }
          .error { color: #b00020; } .note { color: #555; font-size: 0.9rem; }
        </style>
      </head>
      <body>
        <h1>${title}</h1>
        ${body} ${footer}
      </body>
    </html>`
}
