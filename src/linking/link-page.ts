import { html } from 'hono/html'
import { type Html, smallPage } from '../platform/small-page.ts'

/** The account-link pages, with the reminder that unlinking is always possible. */
function layout(title: string, body: Html): Html {
  return smallPage(
    title,
    body,
    html`<p class="note">
      You can unlink your accounts at any time from the LINE menu.
      連携はいつでもLINEのメニューから解除できます。
    </p>`,
  )
}

/** An error's lines (English, then Japanese: link-page-errors.ts), each on its own. */
const errorLine = (error?: string) =>
  error
    ? html`<p class="error" role="alert">${error
        .split('\n')
        .map((line, i) => (i === 0 ? line : html`<br />${line}`))}</p>`
    : ''

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

/** `email`: the code's own address (link_code), never one a form posted; none when unknown. */
export function codePage(v: {
  linkToken: string
  codeId: string
  email: string | undefined
  error?: string
}): Html {
  const to =
    v.email === undefined
      ? { en: 'your email address', ja: 'ご入力のメールアドレス' }
      : { en: html`<strong>${v.email}</strong>`, ja: html`<strong>${v.email}</strong> ` }
  return layout(
    'Enter your code / 確認コード',
    html`<p>
        We sent a 6-digit code to ${to.en}. It is valid for 10 minutes.
        ${to.ja}に6桁の確認コードを送信しました。有効期限は10分です。
      </p>
      ${errorLine(v.error)}
      <form method="post" action="/link/code">
        <input type="hidden" name="linkToken" value="${v.linkToken}" />
        <input type="hidden" name="codeId" value="${v.codeId}" />
        <label for="code">Code / 確認コード</label>
        <input id="code" name="code" inputmode="numeric" autocomplete="one-time-code"
          pattern="[0-9０-９ 　]{6,7}" maxlength="7" required />
        <button type="submit">Link / 連携する</button>
      </form>
      ${v.email === undefined ? '' : resendForm(v.linkToken, v.email)}`,
  )
}

const resendForm = (linkToken: string, email: string) =>
  html`<form method="post" action="/link/email">
    <input type="hidden" name="linkToken" value="${linkToken}" />
    <input type="hidden" name="email" value="${email}" />
    <button type="submit">Send a new code / コードを再送信</button>
  </form>`

export function errorPage(message: string): Html {
  return layout('Account link / アカウント連携', html`${errorLine(message)}`)
}
