import { cardIssueOptions, ensureMemberCard, memberCardContent } from '../cards/cards.service.ts'
import { hasConsentCategory, optInOnLine, optOutOnLine } from '../consent/consent-postback.ts'
import { ensureLineUser } from '../identity/identity.service.ts'
import { isLinkedToOnlineAccount, unlinkAccount } from '../linking/link.service.ts'
import { startAccountLink } from '../linking/link-start.service.ts'
import type { ConversationContext } from './conversation.service.ts'

export type ConversationRoute = {
  /** 'stale': a tap overtaken by a later change (nothing done, nothing answered). */
  // biome-ignore lint/suspicious/noConfusingVoidType: most handlers return nothing (void)
  handle: (ctx: ConversationContext) => Promise<'stale' | void>
  /**
   * Whether the postback's parameters name something the route knows (a consent category):
   * when not, the event is `unrouted`, unanswered, as an unknown action is.
   */
  accepts?: (params: URLSearchParams) => boolean
  /** A postback that records the person's choice: applied in standby mode too, unanswered. */
  appliesInStandby?: boolean
}

/**
 * What the menu and keywords do, with buttons for the card and offers off/on (a menu without
 * "Get offers", as vip's, still leaves the way back), and unlink for a linked shopper (vip's menu
 * has no Unlink button, and LINE requires that they can unlink at any time).
 */
const help: ConversationRoute = {
  async handle(ctx) {
    const button = (label: string, data: string) => ({
      type: 'action' as const,
      action: { type: 'postback' as const, label, data, displayText: label },
    })
    const lineUser = await ensureLineUser(ctx, ctx.lineUid)
    const linked = await isLinkedToOnlineAccount(ctx.trx, lineUser.id)
    await ctx.reply(
      [
        {
          type: 'text',
          text:
            'Member card: send "card" or tap Member card. Link account: your online shop ' +
            'purchases and points in one place. Stop offers / Get offers: turn offers and news ' +
            'on LINE off or on.' +
            (linked ? ' Unlink account: below, at any time.' : '') +
            '\n' +
            '「会員証」と送ると会員証を表示します。オンラインショップのアカウント連携、' +
            'お得な情報の配信停止・再開もメニューからできます。「ヘルプ」でこの案内を表示します。' +
            (linked ? 'アカウント連携の解除は下のボタンからいつでもできます。' : ''),
          quickReply: {
            items: [
              button('Member card', 'action=card'),
              button('Stop offers', 'action=optout&category=marketing'),
              button('Get offers', 'action=optin&category=marketing'),
              ...(linked ? [button('Unlink account', 'action=unlink')] : []),
            ],
          },
        },
      ],
      'help',
    )
  },
}

/** The member card (issued now if this person has none yet). */
const card: ConversationRoute = {
  async handle(ctx) {
    const lineUser = await ensureLineUser(ctx, ctx.lineUid)
    await ensureMemberCard(ctx.trx, lineUser.customer_id, cardIssueOptions(ctx.deps))
    await ctx.reply(memberCardContent(), 'member-card')
  },
}

/** Link the LINE account to the shopper's online account (LINE account link). */
const link: ConversationRoute = { handle: startAccountLink }

/** Remove that link; the shopper may do it at any time. */
const unlink: ConversationRoute = { handle: unlinkAccount, appliesInStandby: true }

/** Stop or resume a message category on LINE (`&category=marketing|transactional`). */
const optout: ConversationRoute = {
  handle: optOutOnLine,
  accepts: hasConsentCategory,
  appliesInStandby: true,
}
const optin: ConversationRoute = {
  handle: optInOnLine,
  accepts: hasConsentCategory,
  appliesInStandby: true,
}

/** Keyword → handler. Matching ignores case, width and surrounding space. */
const KEYWORDS: [string[], ConversationRoute][] = [
  [['help', 'ヘルプ', 'menu', 'メニュー'], help],
  [['会員証', 'card', 'member card'], card],
]

/** Postback `action=` → handler. */
const POSTBACK_ACTIONS: Record<string, ConversationRoute> = {
  help,
  card,
  link,
  unlink,
  optout,
  optin,
}

const keywordIndex = new Map<string, ConversationRoute>(
  KEYWORDS.flatMap(([words, route]) => words.map((w) => [normalise(w), route] as const)),
)

export function findKeywordRoute(text: string): ConversationRoute | undefined {
  return keywordIndex.get(normalise(text))
}

export function findPostbackRoute(action: string | null): ConversationRoute | undefined {
  return action !== null && Object.hasOwn(POSTBACK_ACTIONS, action)
    ? POSTBACK_ACTIONS[action]
    : undefined
}

/** Postback data is `action=…&key=value`, URL-encoded like a query string. */
export function parsePostbackData(data: string): URLSearchParams {
  return new URLSearchParams(data)
}

function normalise(text: string): string {
  return text.normalize('NFKC').trim().toLowerCase()
}
