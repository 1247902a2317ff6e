import type { webhook } from '@line/bot-sdk'
import { cardIssueOptions, ensureMemberCard, memberCardContent } from '../cards/cards.service.ts'
import { createCustomer } from '../customers/customer.service.ts'
import { jobIds } from '../jobs.ts'
import { replyTokenExpiry, scheduleDelivery } from '../messaging/delivery.service.ts'
import { forgetRichMenuOf, linkRichMenuAfterCommit } from '../richmenu/richmenu-link.service.ts'
import type { EventContext, EventOutcome } from '../webhook/event-context.ts'
import {
  findLineUserByUid,
  insertLineUser,
  lockLineUid,
  updateLineUserStatusIfNewer,
} from './identity.repo.ts'
import { findLastUnfollowAt } from './unfollow-event.repo.ts'

/** Status time for an identity first seen through a message: any follow or unfollow wins. */
const UNKNOWN_STATUS_TIME = new Date(0)

type Applied = {
  lineUser: Awaited<ReturnType<typeof insertLineUser>>
  /** Whether this event decided the current status. */
  applied: boolean
  created: boolean
  previous: string | null
}

/**
 * Applies a friend status from an event at time `at`, creating the customer and LINE identity on
 * first sight. LINE's events may arrive out of order, and an unfollow from an unknown user keeps
 * nothing but its event: when one stored there happened at or after `at`, a follow is stale
 * (undefined: nothing is created), and someone who talks to us is created blocked as of then.
 */
async function applyFriend(
  ctx: Pick<EventContext, 'trx'>,
  lineUid: string,
  at: Date,
  opts: { createBlocked: boolean },
): Promise<Applied | undefined> {
  await lockLineUid(ctx.trx, lineUid)
  const existing = await findLineUserByUid(ctx.trx, lineUid)
  if (existing) {
    const applied = await updateLineUserStatusIfNewer(ctx.trx, existing.id, 'friend', at)
    return { lineUser: existing, applied, created: false, previous: existing.status }
  }
  const unfollowedAt = await findLastUnfollowAt(ctx.trx, lineUid)
  const blocked = unfollowedAt !== undefined && unfollowedAt >= at
  if (blocked && !opts.createBlocked) return undefined
  const customerId = await createCustomer(ctx.trx)
  const lineUser = await insertLineUser(ctx.trx, {
    customerId,
    lineUid,
    ...(blocked ? { status: 'blocked', at: unfollowedAt } : { status: 'friend', at }),
  })
  return { lineUser, applied: !blocked, created: true, previous: null }
}

/**
 * The LINE identity of someone who talks to us (a message or postback can overtake their
 * follow event). Creates it as a friend of unknown age, so the real follow/unfollow decides.
 */
export async function ensureLineUser(
  ctx: Pick<EventContext, 'trx' | 'deps' | 'afterCommit' | 'webhookEventId'>,
  lineUid: string,
) {
  const result = await applyFriend(ctx, lineUid, UNKNOWN_STATUS_TIME, { createBlocked: true })
  if (!result) throw new Error('a LINE user who talks to us is always created')
  // LINE has no profile to give for someone who has blocked us.
  if (result.created && result.applied) enqueueProfileFetch(ctx, result.lineUser.id)
  return result.lineUser
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
  const result = await applyFriend(ctx, lineUid, at, { createBlocked: false })
  if (!result) return 'stale'
  const { lineUser, applied, created } = result

  if (created || event.follow?.isUnblocked) enqueueProfileFetch(ctx, lineUser.id)
  if (!applied) return 'stale'
  // Issued with the customer on the first follow (same transaction); an unblock keeps the card.
  await ensureMemberCard(ctx.trx, lineUser.customer_id, cardIssueOptions(ctx.deps))
  // After a block, the menu recorded no longer counts (LINE links nothing to a blocker):
  // forgotten, or neither the link below nor a relink would send it again.
  if (!created) await forgetRichMenuOf(ctx.trx, lineUser.id)
  if (!ctx.standby) await scheduleWelcome(ctx, event, result)
  // The menu of their segment, in standby mode too: a menu link is no message (standby holds
  // back messages only, LINE-API.md §9.11), and the unlink and the relink link in standby too.
  linkRichMenuAfterCommit(ctx, lineUser.id, ctx.webhookEventId)
  return ctx.standby ? 'standby' : 'handled'
}

/** The welcome: the member card, rendered when it is sent (points and coupon as they are then). */
async function scheduleWelcome(ctx: EventContext, event: webhook.FollowEvent, follow: Applied) {
  const { lineUser, created, previous } = follow
  // "Welcome back" only after a follow we saw: not to someone first met through a message, nor
  // to a row that an unfollow alone created (older data).
  const followedBefore = (lineUser.followed_at?.getTime() ?? 0) > UNKNOWN_STATUS_TIME.getTime()
  const returning =
    !created && followedBefore && (event.follow?.isUnblocked === true || previous === 'blocked')
  await scheduleDelivery(ctx, {
    dedupeKey: `welcome:${ctx.webhookEventId}`,
    kind: returning ? 'welcome-back' : 'welcome',
    category: 'transactional',
    customerId: lineUser.customer_id,
    content: memberCardContent(returning ? 'back' : 'new'),
    reply: {
      token: event.replyToken,
      expiresAt: replyTokenExpiry(ctx),
      lineUserId: lineUser.id,
    },
  })
}

/**
 * An unfollow blocks a known friend. From a user Kizuna does not know (never seen, or erased:
 * their user id is a tombstone now) it creates nothing: the stored event is all that is kept,
 * and a follow that happened before it finds it there (applyFriend).
 */
export async function handleUnfollow(
  ctx: EventContext,
  event: webhook.UnfollowEvent,
): Promise<EventOutcome> {
  const lineUid = event.source?.userId
  if (!lineUid) return 'ignored'
  await lockLineUid(ctx.trx, lineUid)
  const existing = await findLineUserByUid(ctx.trx, lineUid)
  if (!existing) return 'stored'
  const at = new Date(event.timestamp)
  const applied = await updateLineUserStatusIfNewer(ctx.trx, existing.id, 'blocked', at)
  return applied ? 'handled' : 'stale'
}
