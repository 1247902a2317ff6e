import { html } from 'hono/html'
import type { ConsentCategory } from '../consent/consent.schemas.ts'
import { type Html, smallPage } from '../platform/small-page.ts'

const WHAT: Record<ConsentCategory, { en: string; ja: string }> = {
  marketing: { en: 'offers and news', ja: 'お得な情報やお知らせ' },
  transactional: { en: 'receipts and account notices', ja: 'レシートや保証期限などのご案内' },
}

/** The emails an unsubscribe stops, in both languages. */
function what(categories: readonly ConsentCategory[]): string {
  const en = categories.map((c) => WHAT[c].en).join(', and ')
  const ja = categories.map((c) => WHAT[c].ja).join('、')
  return `${en} / ${ja}`
}

/** GET: asks first (mail scanners open links; only the POST unsubscribes). */
export function confirmPage(action: string, categories: readonly ConsentCategory[]): Html {
  return smallPage(
    'Unsubscribe / 配信停止',
    html`<p>Stop emails with ${what(categories)}?</p>
      <form method="post" action="${action}">
        <input type="hidden" name="List-Unsubscribe" value="One-Click" />
        <button type="submit">Unsubscribe / 配信を停止する</button>
      </form>`,
  )
}

export function donePage(categories: readonly ConsentCategory[]): Html {
  return smallPage(
    'Unsubscribed / 配信停止',
    html`<p>You will no longer receive emails with ${what(categories)}.</p>
      <p>メールの配信を停止しました。</p>`,
  )
}

export function problemPage(title: string, message: string): Html {
  return smallPage(title, html`<p>${message}</p>`)
}
