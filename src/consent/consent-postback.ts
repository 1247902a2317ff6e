import type { messagingApi } from '@line/bot-sdk'
import type { ConversationContext } from '../conversation/conversation.service.ts'
import { ensureLineUser } from '../identity/identity.service.ts'
import { type ConsentCategory, consentCategorySchema } from './consent.schemas.ts'
import { setConsent } from './consent.service.ts'

const WHAT: Record<ConsentCategory, { en: string; ja: string }> = {
  marketing: { en: 'offers and news', ja: 'お得な情報やお知らせ' },
  transactional: {
    en: 'receipts and account notices',
    ja: 'レシートや保証期限などのご案内',
  },
}

function confirmation(category: ConsentCategory, granted: boolean): messagingApi.Message {
  const what = WHAT[category]
  const text = granted
    ? `You will receive ${what.en} on LINE again.\nLINEでの${what.ja}の配信を再開しました。`
    : `You will no longer receive ${what.en} on LINE. You can turn them back on at any time.\n` +
      `LINEでの${what.ja}の配信を停止しました。いつでも再開できます。`
  const action: messagingApi.PostbackAction = granted
    ? { type: 'postback', label: 'Stop / 配信停止', data: `action=optout&category=${category}` }
    : { type: 'postback', label: 'Turn on / 配信再開', data: `action=optin&category=${category}` }
  return { type: 'text', text, quickReply: { items: [{ type: 'action', action }] } }
}

/** The postback's `category` (marketing when absent); null for another, or an empty one. */
function categoryOf(params: URLSearchParams): ConsentCategory | null {
  const parsed = consentCategorySchema.safeParse(params.get('category') ?? 'marketing')
  return parsed.success ? parsed.data : null
}

/** Whether an opt-out or opt-in postback names a category there is (else it is `unrouted`). */
export const hasConsentCategory = (params: URLSearchParams) => categoryOf(params) !== null

/**
 * Postbacks `action=optout` / `action=optin` (`&category=marketing|transactional`, default
 * marketing): revokes or grants that category on LINE and confirms, offering the way back.
 */
async function changeLineConsent(ctx: ConversationContext, granted: boolean): Promise<void> {
  const category = categoryOf(ctx.params)
  // Routed only with a category there is (hasConsentCategory).
  if (!category) return
  const lineUser = await ensureLineUser(ctx, ctx.lineUid)
  const { consent } = await setConsent(ctx.trx, lineUser.customer_id, {
    category,
    channel: 'line',
    granted,
    source: 'line-postback',
    decided: { at: ctx.occurredAt, receivedAt: ctx.receivedAt },
  })
  if (consent[category].line !== granted) {
    // A later choice (a tap processed first, staff, an unsubscribe) already holds: it stands,
    // and it was confirmed when it was made.
    ctx.deps.log.info({ webhookEventId: ctx.webhookEventId }, 'consent postback overtaken')
    return
  }
  await ctx.reply([confirmation(category, granted)], granted ? 'consent-optin' : 'consent-optout')
}

export const optOutOnLine = (ctx: ConversationContext) => changeLineConsent(ctx, false)
export const optInOnLine = (ctx: ConversationContext) => changeLineConsent(ctx, true)
