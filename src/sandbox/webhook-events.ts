import type { webhook } from '@line/bot-sdk'
import { randomHex, type SandboxContext } from './state.ts'

/** What each simulated action needs; `buildEvent(kind, userId, input)`. */
export type EventInputs = {
  follow: { isUnblocked?: boolean }
  unfollow: Record<string, never>
  text: { text: string; quotedMessageId?: string }
  postback: { data: string; params?: Record<string, string> }
  accountLink: { nonce: string; result?: 'ok' | 'failed' }
}
export type EventKind = keyof EventInputs

export type BuildEventOptions = {
  /** When the event happened (ms); defaults to now. Use it to build out-of-order batches. */
  timestamp?: number
  /** `standby` events carry no reply token (LINE-API.md §1.4). */
  mode?: 'active' | 'standby'
}

/** 20 minutes after the event, even a redelivered reply token is dead (LINE-API.md §2.2). */
const REDELIVERY_TOKEN_CAP_MS = 20 * 60 * 1000

/**
 * Builds one webhook event exactly as LINE would send it, and issues (and tracks) its reply
 * token when the event type carries one.
 */
export function buildEvent<K extends EventKind>(
  ctx: SandboxContext,
  kind: K,
  userId: string,
  input: EventInputs[K],
  opts: BuildEventOptions = {},
): webhook.Event {
  const timestamp = opts.timestamp ?? ctx.now()
  const mode = opts.mode ?? 'active'
  const base = {
    mode,
    timestamp,
    webhookEventId: ctx.newWebhookEventId(),
    deliveryContext: { isRedelivery: false },
  }
  const source: webhook.UserSource = { type: 'user', userId }
  const replyToken = () => issueReplyToken(ctx, userId, timestamp, mode)

  switch (kind) {
    case 'follow': {
      const { isUnblocked = false } = input as EventInputs['follow']
      // The SDK types replyToken as required; in standby mode LINE omits it anyway.
      const event = { type: 'follow', ...base, source, ...replyToken(), follow: { isUnblocked } }
      return event as webhook.FollowEvent
    }
    case 'unfollow':
      return { type: 'unfollow', ...base, source }
    case 'text': {
      const { text, quotedMessageId } = input as EventInputs['text']
      const message: webhook.TextMessageContent = {
        type: 'text',
        id: ctx.newMessageId(),
        text,
        quoteToken: randomHex(24),
        ...(quotedMessageId ? { quotedMessageId } : {}),
      }
      return { type: 'message', ...base, source, ...replyToken(), message }
    }
    case 'postback': {
      const { data, params } = input as EventInputs['postback']
      const postback = params ? { data, params } : { data }
      return { type: 'postback', ...base, source, ...replyToken(), postback }
    }
    case 'accountLink': {
      const { nonce, result = 'ok' } = input as EventInputs['accountLink']
      // A failed link carries neither source nor reply token (LINE-API.md §6).
      if (result === 'failed') return { type: 'accountLink', ...base, link: { result, nonce } }
      return { type: 'accountLink', ...base, source, ...replyToken(), link: { result, nonce } }
    }
    default:
      throw new Error(`unknown event kind ${String(kind)}`)
  }
}

function issueReplyToken(
  ctx: SandboxContext,
  userId: string,
  eventTimestamp: number,
  mode: 'active' | 'standby',
): { replyToken?: string } {
  if (mode === 'standby') return {}
  const replyToken = randomHex(16)
  ctx.state.replyTokens.set(replyToken, {
    userId,
    eventTimestamp,
    expiresAt: ctx.now() + ctx.replyTokenTtlMs,
    used: false,
  })
  return { replyToken }
}

/** The full request body LINE POSTs to the webhook URL. */
export function envelope(ctx: SandboxContext, events: webhook.Event[]): webhook.CallbackRequest {
  return { destination: ctx.botUserId, events }
}

/**
 * Marks every event as redelivered (a copy). Unused reply tokens work again for a minute, unless
 * the event is more than 20 minutes old.
 */
export function asRedelivery(
  ctx: SandboxContext,
  body: webhook.CallbackRequest,
): webhook.CallbackRequest {
  const at = ctx.now()
  const events = body.events.map((event) => {
    const token = 'replyToken' in event ? ctx.state.replyTokens.get(String(event.replyToken)) : null
    if (token && !token.used && at - token.eventTimestamp < REDELIVERY_TOKEN_CAP_MS) {
      token.expiresAt = at + ctx.replyTokenTtlMs
    }
    return { ...event, deliveryContext: { isRedelivery: true } }
  })
  return { ...body, events }
}
