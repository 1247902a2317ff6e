import type { webhook } from '@line/bot-sdk'
import { handlePostback, handleTextMessage } from '../conversation/conversation.service.ts'
import { handleFollow, handleUnfollow, noteLineUserTalked } from '../identity/identity.service.ts'
import { handleAccountLink } from '../linking/link.service.ts'
import type { EventContext, EventOutcome } from './event-context.ts'
import { forgetUnsentMessage, isMessageUnsent, stripMessageEvent } from './webhook.repo.ts'

/** LINE lets a message be unsent for 24 hours; the margin covers clocks that differ. */
const UNSEND_WINDOW_MS = 25 * 60 * 60_000

/** Events later features read from the inbox (LINE membership). */
const STORED_FOR_LATER = new Set(['membership'])

export async function dispatchEvent(
  ctx: EventContext,
  event: webhook.Event,
): Promise<EventOutcome> {
  switch (event.type) {
    case 'follow':
      return handleFollow(ctx, event)
    case 'unfollow':
      return handleUnfollow(ctx, event)
    case 'message': {
      // Proof they are back from a block, answered or not (unsent too: they sent it).
      await noteLineUserTalked(ctx, event)
      // Unsent before it reached us (its request failed and LINE sent it again after the
      // unsend, or the two came out of order): forgotten, never answered.
      const message = { id: event.message.id, userId: event.source?.userId ?? null }
      if (await isMessageUnsent(ctx.trx, message)) {
        await stripMessageEvent(ctx.trx, ctx.webhookEventId)
        return 'ignored'
      }
      return handleTextMessage(ctx, event)
    }
    case 'postback':
      await noteLineUserTalked(ctx, event)
      return handlePostback(ctx, event)
    case 'accountLink':
      return handleAccountLink(ctx, event)
    case 'unsend': {
      const found = await forgetUnsentMessage(ctx.trx, {
        id: event.unsend.messageId,
        userId: event.source?.userId ?? null,
        since: new Date(event.timestamp - UNSEND_WINDOW_MS),
      })
      return found ? 'handled' : 'ignored'
    }
    default:
      if (STORED_FOR_LATER.has(event.type)) return 'stored'
      ctx.deps.log.info({ webhookEventId: ctx.webhookEventId, type: event.type }, 'event ignored')
      return 'ignored'
  }
}
