import { html } from 'hono/html'
import type { ConsentCategory } from '../consent/consent.schemas.ts'
import { type Html, smallPage } from '../platform/small-page.ts'

const WHAT: Record<ConsentCategory, string> = {
  marketing: 'offers and news / お得な情報やお知らせ',
  transactional: 'receipts and account notices / レシートや保証期限などのご案内',
}

/** GET: asks first (mail scanners open links; only the POST unsubscribes). */
export function confirmPage(action: string, category: ConsentCategory): Html {
  return smallPage(
    'Unsubscribe / 配信停止',
    html`<p>Stop emails with ${WHAT[category]}?</p>
      <form method="post" action="${action}">
        <input type="hidden" name="List-Unsubscribe" value="One-Click" />
        <button type="submit">Unsubscribe / 配信を停止する</button>
      </form>`,
  )
}

export function donePage(category: ConsentCategory): Html {
  return smallPage(
    'Unsubscribed / 配信停止',
    html`<p>You will no longer receive emails with ${WHAT[category]}.</p>
      <p>メールの配信を停止しました。</p>`,
  )
}

export function problemPage(title: string, message: string): Html {
  return smallPage(title, html`<p>${message}</p>`)
}
