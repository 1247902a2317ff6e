import type { webhook } from '@line/bot-sdk'
import { ensureLineUser } from '../identity/identity.service.ts'
import { type ReplyContent, scheduleReply } from '../messaging/delivery.service.ts'
import type { EventContext, EventOutcome } from '../webhook/event-context.ts'
import { findKeywordRoute, findPostbackRoute, parsePostbackData } from './routes.ts'

/**
 * Answers the event: LINE messages built in code, a template rendered when it is sent, or
 * messages a builder makes when it is sent.
 */
export type Replier = (content: ReplyContent, kind: string) => Promise<void>

/** What a keyword or postback handler gets. */
export type ConversationContext = EventContext & {
  lineUid: string
  params: URLSearchParams
  /** When the person sent the message or tapped (LINE's event time), not when it is processed. */
  occurredAt: Date
  /** The event's reply token (fresh for about a minute after `receivedAt`). */
  replyToken: string | null
  reply: Replier
}

export async function handleTextMessage(
  ctx: EventContext,
  event: webhook.MessageEvent,
): Promise<EventOutcome> {
  const { text } = event.message as Partial<webhook.TextMessageContent>
  // Not text, or unsent before it was processed (its text is gone): nothing to answer.
  if (event.message.type !== 'text' || typeof text !== 'string') return 'ignored'
  const route = findKeywordRoute(text)
  if (!route) return unrouted(ctx, 'keyword')
  if (ctx.standby) return 'standby'
  const conv = await conversationContext(ctx, event, new URLSearchParams())
  if (!conv) return 'ignored'
  if ((await route.handle(conv)) === 'stale') return 'stale'
  return 'handled'
}

export async function handlePostback(
  ctx: EventContext,
  event: webhook.PostbackEvent,
): Promise<EventOutcome> {
  const params = parsePostbackData(event.postback.data)
  const route = findPostbackRoute(params.get('action'))
  if (!route) return unrouted(ctx, `postback action ${params.get('action') ?? '(none)'}`)
  if (route.accepts && !route.accepts(params)) {
    return unrouted(ctx, `postback action ${params.get('action')} with unknown parameters`)
  }
  // A choice the person made (offers off, unlink) holds whoever has the chat; only the answer
  // is left out (no reply token in standby, and the bot must send nothing).
  if (ctx.standby && !route.appliesInStandby) return 'standby'
  const conv = await conversationContext(ctx, event, params)
  if (!conv) return 'ignored'
  if ((await route.handle(conv)) === 'stale') return 'stale'
  return ctx.standby ? 'standby' : 'handled'
}

function unrouted(ctx: EventContext, what: string): EventOutcome {
  ctx.deps.log.info({ webhookEventId: ctx.webhookEventId, what }, 'no route for this event')
  return 'unrouted'
}

async function conversationContext(
  ctx: EventContext,
  event: webhook.MessageEvent | webhook.PostbackEvent,
  params: URLSearchParams,
): Promise<ConversationContext | null> {
  // Only a one-to-one chat: in a group or room the reply is read by everyone in it (a member
  // card, an account-link page), and the member may never have added the account as a friend.
  if (event.source?.type !== 'user') return null
  const lineUid = event.source.userId
  if (!lineUid) return null
  const replyToken = event.replyToken
  return {
    ...ctx,
    lineUid,
    params,
    occurredAt: new Date(event.timestamp),
    replyToken: replyToken ?? null,
    async reply(content, kind) {
      if (ctx.standby) return
      const lineUser = await ensureLineUser(ctx, lineUid)
      const to = {
        customerId: lineUser.customer_id,
        lineUserId: lineUser.id,
        replyToken: replyToken ?? null,
      }
      await scheduleReply(ctx, to, content, kind)
    },
  }
}
