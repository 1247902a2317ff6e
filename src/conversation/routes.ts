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

/** Keyword → handler. Matching ignores case, width and surrounding space. */
const KEYWORDS: [string[], ConversationRoute][] = [[['help', 'ヘルプ', 'menu', 'メニュー'], help]]

/** Postback `action=` → handler. */
const POSTBACK_ACTIONS: Record<string, ConversationRoute> = { help }

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
