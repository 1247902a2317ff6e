import type { webhook } from '@line/bot-sdk'
import { cardIssueOptions, ensureMemberCard, memberCardContent } from '../cards/cards.service.ts'
import { createCustomer } from '../customers/customer.service.ts'
import { jobIds } from '../jobs.ts'
import { replyTokenExpiry, scheduleDelivery } from '../messaging/delivery.service.ts'
import type { EventContext, EventOutcome } from '../webhook/event-context.ts'
import {
  findLineUserByUid,
  insertLineUser,
  type LineStatus,
  lockLineUid,
  updateLineUserStatusIfNewer,
} from './identity.repo.ts'

/**
 * Applies a friend/blocked status from an event at time `at`. Creates the customer and LINE
 * identity on first sight. Returns whether this event decided the current status.
 */
async function applyLineStatus(
  ctx: Pick<EventContext, 'trx'>,
  lineUid: string,
  status: LineStatus,
  at: Date,
) {
  await lockLineUid(ctx.trx, lineUid)
  const existing = await findLineUserByUid(ctx.trx, lineUid)
  if (!existing) {
    const customerId = await createCustomer(ctx.trx)
    const created = await insertLineUser(ctx.trx, { customerId, lineUid, status, at })
    return { lineUser: created, applied: true, created: true, previous: null }
  }
  const applied = await updateLineUserStatusIfNewer(ctx.trx, existing.id, status, at)
  return { lineUser: existing, applied, created: false, previous: existing.status }
}

/** Status time for an identity first seen through a message: any follow or unfollow wins. */
const UNKNOWN_STATUS_TIME = new Date(0)

/**
 * The LINE identity of someone who talks to us (a message or postback can overtake their
 * follow event). Creates it as a friend of unknown age, so the real follow/unfollow decides.
 */
export async function ensureLineUser(
  ctx: Pick<EventContext, 'trx' | 'deps' | 'afterCommit' | 'webhookEventId'>,
  lineUid: string,
) {
  const { lineUser, created } = await applyLineStatus(ctx, lineUid, 'friend', UNKNOWN_STATUS_TIME)
  if (created) enqueueProfileFetch(ctx, lineUser.id)
  return lineUser
}

function enqueueProfileFetch(
  ctx: Pick<EventContext, 'deps' | 'afterCommit' | 'webhookEventId'>,
  lineUserId: string,
): void {
  ctx.afterCommit(() =>
    ctx.deps.queues.enqueue(
      'identity.fetch-profile',
      { lineUserId },
      { jobId: jobIds.profile(lineUserId, ctx.webhookEventId) },
    ),
  )
}

export async function handleFollow(
  ctx: EventContext,
  event: webhook.FollowEvent,
): Promise<EventOutcome> {
  const lineUid = event.source?.userId
  if (!lineUid) return 'ignored'
  const at = new Date(event.timestamp)
  const { lineUser, applied, created, previous } = await applyLineStatus(ctx, lineUid, 'friend', at)

  if (created || event.follow?.isUnblocked) enqueueProfileFetch(ctx, lineUser.id)
  if (!applied) return 'stale'
  // Issued with the customer on the first follow (same transaction); an unblock keeps the card.
  await ensureMemberCard(ctx.trx, lineUser.customer_id, cardIssueOptions(ctx.deps))
  if (ctx.standby) return 'standby'

  const returning = !created && (event.follow?.isUnblocked === true || previous === 'blocked')
  // The welcome is the member card, rendered when it is sent (points and coupon as they are then).
  await scheduleDelivery(ctx, {
    dedupeKey: `welcome:${ctx.webhookEventId}`,
    kind: returning ? 'welcome-back' : 'welcome',
    category: 'transactional',
    customerId: lineUser.customer_id,
    content: memberCardContent(returning ? 'back' : 'new'),
    reply: {
      token: event.replyToken,
      expiresAt: replyTokenExpiry(ctx.receivedAt),
      lineUserId: lineUser.id,
    },
  })
  return 'handled'
}

export async function handleUnfollow(
  ctx: EventContext,
  event: webhook.UnfollowEvent,
): Promise<EventOutcome> {
  const lineUid = event.source?.userId
  if (!lineUid) return 'ignored'
  const { applied } = await applyLineStatus(ctx, lineUid, 'blocked', new Date(event.timestamp))
  return applied ? 'handled' : 'stale'
}
