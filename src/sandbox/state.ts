import { randomBytes } from 'node:crypto'
import {
  loadOpenApiValidator,
  messagingApiSpecPath,
  type OpenApiValidator,
} from './openapi-validator.ts'
import { createRateLimiter, type RateLimiter, type RateLimitOverrides } from './rate-limit.ts'
import { botUserIdFor } from './sandbox-channel.ts'
import { createUlidFactory } from './ulid.ts'

export type Friendship = 'none' | 'friend' | 'blocked'

export type SimUser = {
  userId: string
  displayName: string
  language?: string
  pictureUrl?: string
  statusMessage?: string
  friendship: Friendship
  createdAt: number
  /** Rich menu linked to this user through the API (not the default). */
  richMenuId?: string
  /**
   * How many messages the user had received when they last sent text or tapped a postback: the
   * LINE app shows a message's quick-reply buttons only while it is the last in the chat, so
   * not once the user has answered it.
   */
  answeredMessages?: number
}

export type SendEndpoint = 'reply' | 'push' | 'multicast' | 'broadcast' | 'narrowcast'
export type SentMessage = { id: string; quoteToken?: string }

/**
 * What the sandbox page shows, in order: a new simulated user (their section), and each line of
 * a user's chat: a message they received (its index in their inbox), or text they sent
 * themselves (typed, a message action, or a postback's displayText), which LINE shows as their
 * own bubble.
 */
export type FeedEntry =
  | { userId: string; kind: 'joined' }
  | { userId: string; kind: 'received'; index: number }
  | { userId: string; kind: 'sent'; at: number; text: string }

/** One message a simulated user received from the bot. */
export type InboxEntry = SentMessage & {
  at: number
  endpoint: SendEndpoint
  requestId: string
  message: Record<string, unknown>
}

export type ReplyTokenState = {
  userId: string | undefined
  eventTimestamp: number
  expiresAt: number
  used: boolean
}

export type RichMenuState = {
  richMenuId: string
  request: Record<string, unknown>
  image?: { contentType: string; bytes: Uint8Array }
}

export type RecordedRequest = {
  at: number
  host: 'api' | 'data'
  method: string
  path: string
  /** The spec path template the request matched, e.g. `/v2/bot/profile/{userId}`. */
  template: string | undefined
  query: string
  /** Header names lowercased. */
  headers: Record<string, string>
  /** Parsed JSON, the raw text for unparseable JSON, or the byte length of a binary body. */
  body: unknown
  /** 0 while the request is still in flight (or the connection was dropped). */
  status: number
  requestId: string
  /** True when a `failNext` script answered instead of the platform. */
  scripted: boolean
}

export type FailNextOptions = {
  method?: string
  path: string | RegExp
  /** Only requests this accepts (e.g. a push to one user: `(r) => r.body.to === id`). */
  match?: (request: RecordedRequest) => boolean
  /** How many matching requests get this answer (1 by default; `Infinity`: every one). */
  count?: number
  status?: number
  body?: unknown
  headers?: Record<string, string>
  /** Waits this long before answering; without `status` the connection is then dropped. */
  timeoutMs?: number
  /**
   * The platform carries the request out first (LINE made the menu, sent the message), then
   * the scripted answer replaces its own: an answer lost after the work was done.
   */
  carriedOut?: boolean
}

export type FailureScript = FailNextOptions & { remaining: number }

/** The next matching request waits for `released` (or the platform's close), then goes on. */
export type HoldScript = {
  method?: string
  path: string | RegExp
  remaining: number
  arrived: () => void
  released: Promise<void>
}

export type WebhookDelivery = {
  at: number
  url: string
  status: number
  /** `could_not_connect`, `request_timeout` or `error_status_code` like LINE's statistics. */
  error?: 'could_not_connect' | 'request_timeout' | 'error_status_code' | 'no_webhook_url'
  body: unknown
}

export type SandboxState = {
  users: Map<string, SimUser>
  inboxes: Map<string, InboxEntry[]>
  /** New users and every chat line, oldest first: the page's feed (inboxes hold only received). */
  feed: FeedEntry[]
  /**
   * Called after each change the sandbox page may show: a chat line, a friendship, a rich menu
   * (its live streams). See notifyPage.
   */
  pageListeners: Set<() => void>
  replyTokens: Map<string, ReplyTokenState>
  linkTokens: Map<string, { userId: string; expiresAt: number }>
  richMenus: Map<string, RichMenuState>
  /** Users the next bulk link naming them accepts (202) but leaves unlinked, as LINE may. */
  bulkLinkMisses: Set<string>
  /** Well-formed user ids scripted as not in this channel: pushes refused, multicasts skip them. */
  notInChannel: Set<string>
  /** User ids a multicast naming them is refused for (400 `to[N]`): see refuseInMulticast. */
  refusedInMulticast: Set<string>
  aliases: Map<string, string>
  defaultRichMenuId: string | undefined
  retryKeys: Map<string, { requestId: string; at: number; sentMessages?: SentMessage[] }>
  /**
   * When each retry key's 24 hours started (its first attempt that LINE did not refuse), and a
   * hash of that attempt's body, which every retry must repeat.
   */
  retryKeyFirstAttempts: Map<string, { at: number; bodyHash: string }>
  narrowcasts: Map<string, { acceptedAt: number; targetCount: number }>
  requests: RecordedRequest[]
  failures: FailureScript[]
  holds: HoldScript[]
  quota: { limit: number | undefined; totalUsage: number }
  webhookDeliveries: WebhookDelivery[]
}

export type SandboxOptions = {
  channelSecret: string
  channelAccessToken: string
  /** The bot's user id (GET /v2/bot/info, webhooks' destination); else one from the secret. */
  botUserId?: string
  webhookUrl?: string
  rateLimits?: RateLimitOverrides
  /** Simulates the monthly message quota (free plans: a few hundred). */
  quota?: { limit: number }
  /** Milliseconds since the epoch; defaults to `Date.now`. */
  now?: () => number
  /** Reply token lifetime; LINE documents "1 minute". */
  replyTokenTtlMs?: number
  /** How long the platform waits for the webhook server (LINE: 2 s). */
  webhookTimeoutMs?: number
}

/** Everything the platform's routes and simulated users share. */
export type SandboxContext = {
  channelSecret: string
  channelAccessToken: string
  botUserId: string
  webhookUrl: string | undefined
  webhookTimeoutMs: number
  replyTokenTtlMs: number
  now: () => number
  state: SandboxState
  validator: OpenApiValidator
  limiter: RateLimiter
  newWebhookEventId: () => string
  newMessageId: () => string
  /** Aborted on close, so scripted hangs and the sandbox page's live streams end. */
  closing: AbortController
}

export function createSandboxContext(opts: SandboxOptions): SandboxContext {
  const now = opts.now ?? Date.now
  let nextMessageId = BigInt(now()) * 100_000n
  return {
    channelSecret: opts.channelSecret,
    channelAccessToken: opts.channelAccessToken,
    // Stable per channel, like a real bot's user ID.
    botUserId: opts.botUserId ?? botUserIdFor(opts.channelSecret),
    webhookUrl: opts.webhookUrl,
    webhookTimeoutMs: opts.webhookTimeoutMs ?? 2000,
    replyTokenTtlMs: opts.replyTokenTtlMs ?? 60_000,
    now,
    state: {
      users: new Map(),
      inboxes: new Map(),
      feed: [],
      pageListeners: new Set(),
      replyTokens: new Map(),
      linkTokens: new Map(),
      richMenus: new Map(),
      bulkLinkMisses: new Set(),
      notInChannel: new Set(),
      refusedInMulticast: new Set(),
      aliases: new Map(),
      defaultRichMenuId: undefined,
      retryKeys: new Map(),
      retryKeyFirstAttempts: new Map(),
      narrowcasts: new Map(),
      requests: [],
      failures: [],
      holds: [],
      quota: { limit: opts.quota?.limit, totalUsage: 0 },
      webhookDeliveries: [],
    },
    validator: loadOpenApiValidator(messagingApiSpecPath),
    limiter: createRateLimiter(opts.rateLimits ?? {}, now),
    newWebhookEventId: createUlidFactory(now),
    newMessageId: () => {
      nextMessageId += 1n
      return String(nextMessageId)
    },
    closing: new AbortController(),
  }
}

/** A LINE user id: `U` and 32 hex digits (LINE-API.md §5). */
export const USER_ID = /^U[0-9a-f]{32}$/

/** The index of the first id that is not a user id (`U` + 32 hex), or -1. */
export const firstMalformedUserId = (ids: readonly unknown[]): number =>
  ids.findIndex((id) => typeof id !== 'string' || !USER_ID.test(id))

/** LINE's 400 body for a request body property it refuses (`'to'`, `to[1]`, `'userIds[0]'`). */
export const invalidProperty = (property: string) => ({
  message: `The property, ${property}, in the request body is invalid (line: -, column: -)`,
})

export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex')
}

export function newUserId(): string {
  return `U${randomHex(16)}`
}

/** Wakes the sandbox page's live streams: something they show may have changed. */
export function notifyPage(ctx: SandboxContext): void {
  for (const listener of ctx.state.pageListeners) listener()
}

export function isFriend(ctx: SandboxContext, userId: string): boolean {
  return ctx.state.users.get(userId)?.friendship === 'friend'
}
