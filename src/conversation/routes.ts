import { cardIssueOptions, ensureMemberCard, memberCardContent } from '../cards/cards.service.ts'
import { optInOnLine, optOutOnLine } from '../consent/consent-postback.ts'
import { ensureLineUser } from '../identity/identity.service.ts'
import { unlinkAccount } from '../linking/link.service.ts'
import { startAccountLink } from '../linking/link-start.service.ts'
import type { ConversationContext } from './conversation.service.ts'

export type ConversationRoute = { handle: (ctx: ConversationContext) => Promise<void> }

const help: ConversationRoute = {
  async handle(ctx) {
    await ctx.reply(
      [
        {
          type: 'text',
          text: 'Send "help" at any time to see this menu again.\n「ヘルプ」と送るとこのメニューを表示します。',
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
const unlink: ConversationRoute = { handle: unlinkAccount }

/** Stop or resume a message category on LINE (`&category=marketing|transactional`). */
const optout: ConversationRoute = { handle: optOutOnLine }
const optin: ConversationRoute = { handle: optInOnLine }

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
