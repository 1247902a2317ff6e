import { html } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'

type Html = HtmlEscapedString | Promise<HtmlEscapedString>

/** The account-link pages. `html` escapes every interpolated value (user input included). */
function layout(title: string, body: Html): Html {
  return html`<!doctype html>
    <html lang="ja">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>${title}</title>
        <style>
          body { font-family: system-ui, sans-serif; max-width: 28rem; margin: 2rem auto; padding: 0 1rem; }
          input, button { font-size: 1.1rem; padding: 0.5rem; width: 100%; box-sizing: border-box; margin: 0.25rem 0; }
          .error { color: #b00020; } .note { color: #555; font-size: 0.9rem; }
        </style>
      </head>
      <body>
        <h1>${title}</h1>
        ${body}
        <p class="note">
          You can unlink your accounts at any time from the LINE menu.
          連携はいつでもLINEのメニューから解除できます。
        </p>
      </body>
    </html>`
}

const errorLine = (error?: string) =>
  error ? html`<p class="error" role="alert">${error}</p>` : ''

export function emailPage(v: { linkToken: string; email?: string; error?: string }): Html {
  return layout(
    'Link your online account / アカウント連携',
    html`<p>
        Enter the email address of your online shop account. We will send you a 6-digit code.
        オンラインショップに登録したメールアドレスを入力してください。
      </p>
      ${errorLine(v.error)}
      <form method="post" action="/link/email">
        <input type="hidden" name="linkToken" value="${v.linkToken}" />
        <label for="email">Email / メールアドレス</label>
        <input id="email" name="email" type="email" autocomplete="email" required
          value="${v.email ?? ''}" />
        <button type="submit">Send code / コードを送信</button>
      </form>`,
  )
}

export function codePage(v: {
  linkToken: string
  codeId: string
  email: string
  error?: string
}): Html {
  return layout(
    'Enter your code / 確認コード',
    html`<p>We sent a 6-digit code to <strong>${v.email}</strong>. It is valid for 10 minutes.</p>
      ${errorLine(v.error)}
      <form method="post" action="/link/code">
        <input type="hidden" name="linkToken" value="${v.linkToken}" />
        <input type="hidden" name="codeId" value="${v.codeId}" />
        <input type="hidden" name="email" value="${v.email}" />
        <label for="code">Code / 確認コード</label>
        <input id="code" name="code" inputmode="numeric" autocomplete="one-time-code"
          pattern="[0-9 ]{6,7}" maxlength="7" required />
        <button type="submit">Link / 連携する</button>
      </form>
      <form method="post" action="/link/email">
        <input type="hidden" name="linkToken" value="${v.linkToken}" />
        <input type="hidden" name="email" value="${v.email}" />
        <button type="submit">Send a new code / コードを再送信</button>
      </form>`,
  )
}

export function errorPage(message: string): Html {
  return layout('Account link / アカウント連携', html`${errorLine(message)}`)
}
