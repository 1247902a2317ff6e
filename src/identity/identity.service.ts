import type { webhook } from '@line/bot-sdk'
import { cardIssueOptions, ensureMemberCard, memberCardContent } from '../cards/cards.service.ts'
import { createCustomer } from '../customers/customer.service.ts'
import { externalJobKey, jobIds } from '../jobs.ts'
import { replyTokenExpiry, scheduleDelivery } from '../messaging/delivery.service.ts'
import { forgetRichMenuOf, linkRichMenuAfterCommit } from '../richmenu/richmenu-link.service.ts'
import type { EventContext, EventOutcome } from '../webhook/event-context.ts'
import {
  findLineUserByUid,
  insertLineUser,
  lockLineUid,
  markLineUserBack,
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
 * Applies a follow at time `at`, creating the customer and LINE identity on first sight. LINE's
 * events may arrive out of order, and an unfollow from an unknown user keeps nothing but its
 * event: when one stored there happened at or after `at`, the follow is stale (undefined:
 * nothing is created). `unblocked`: LINE says it ends a block (updateLineUserStatusIfNewer).
 */
async function applyFollow(
  ctx: Pick<EventContext, 'trx'>,
  lineUid: string,
  at: Date,
  unblocked: boolean,
): Promise<Applied | undefined> {
  await lockLineUid(ctx.trx, lineUid)
  const existing = await findLineUserByUid(ctx.trx, lineUid)
  if (existing) {
    const applied = await updateLineUserStatusIfNewer(ctx.trx, existing.id, 'friend', at, {
      unblocked,
    })
    return { lineUser: existing, applied, created: false, previous: existing.status }
  }
  const unfollowedAt = await findLastUnfollowAt(ctx.trx, lineUid)
  if (unfollowedAt !== undefined && unfollowedAt >= at) return undefined
  const customerId = await createCustomer(ctx.trx)
  const lineUser = await insertLineUser(ctx.trx, { customerId, lineUid, status: 'friend', at })
  return { lineUser, applied: true, created: true, previous: null }
}

/**
 * The LINE identity of someone who talks to us (a message, postback or account link, which can
 * overtake their follow event). A blocker cannot talk to the account (an unblock is a follow,
 * LINE-API.md §1.5), so someone blocked before the event's time is back: a friend as of just
 * after that block, not as of the event, so that their follow (still on its way, between the two)
 * still decides and welcomes them, while an older unfollow arriving late does not. First seen,
 * they are a friend of unknown age (any follow or unfollow decides), or blocked as of an unfollow
 * stored at or after the event. Neither counts as a follow seen (followed_at is left alone):
 * the follow decides whether it is a welcome back.
 */
export async function ensureLineUser(
  ctx: Pick<EventContext, 'trx' | 'deps' | 'afterCommit' | 'webhookEventId' | 'occurredAt'>,
  lineUid: string,
) {
  await lockLineUid(ctx.trx, lineUid)
  const at = ctx.occurredAt
  const existing = await findLineUserByUid(ctx.trx, lineUid)
  if (existing) return backIfBlockedBefore(ctx, existing)
  const unfollowedAt = await findLastUnfollowAt(ctx.trx, lineUid)
  const blocked = unfollowedAt !== undefined && unfollowedAt >= at
  const customerId = await createCustomer(ctx.trx)
  const lineUser = await insertLineUser(ctx.trx, {
    customerId,
    lineUid,
    ...(blocked
      ? { status: 'blocked', at: unfollowedAt }
      : {
          status: 'friend',
          at: unfollowedAt ? justAfter(unfollowedAt) : UNKNOWN_STATUS_TIME,
          followedAt: UNKNOWN_STATUS_TIME,
        }),
  })
  // LINE has no profile to give for someone who has blocked us.
  if (!blocked) enqueueProfileFetch(ctx, lineUser.id)
  return lineUser
}

/**
 * A one-to-one message or postback, answered or not (a sticker, a text no keyword takes): from
 * a known LINE user recorded as blocked before it, it shows they are back, as in ensureLineUser.
 * Someone unknown is not created (an answer does that). A message in a group or room proves
 * nothing (a member there need not be a friend), and standby events are left to their handlers.
 */
export async function noteLineUserTalked(
  ctx: Pick<
    EventContext,
    'trx' | 'deps' | 'afterCommit' | 'webhookEventId' | 'occurredAt' | 'standby'
  >,
  event: webhook.MessageEvent | webhook.PostbackEvent,
): Promise<void> {
  const lineUid = event.source?.type === 'user' ? event.source.userId : undefined
  if (ctx.standby || !lineUid) return
  // Locked as ensureLineUser does: an unfollow of theirs being applied beside it (another job)
  // is waited for, and a message after it still brings them back.
  await lockLineUid(ctx.trx, lineUid)
  const existing = await findLineUserByUid(ctx.trx, lineUid)
  if (existing) await backIfBlockedBefore(ctx, existing)
}

/** The row, marked back if it was blocked before the event (the caller holds the lock). */
async function backIfBlockedBefore(
  ctx: Pick<EventContext, 'trx' | 'deps' | 'afterCommit' | 'webhookEventId' | 'occurredAt'>,
  existing: Applied['lineUser'],
): Promise<Applied['lineUser']> {
  if (existing.status !== 'blocked' || existing.status_changed_at >= ctx.occurredAt) return existing
  const back = await markLineUserBack(ctx.trx, existing.id, justAfter(existing.status_changed_at))
  // The profile saved while they were blocked was unavailable (LINE answers 404 then): the
  // row forgot that fetch (the sweeper retries it), and a job asks for it now.
  enqueueProfileFetch(ctx, back.id)
  return back
}

/** The first moment after `at` (event times are whole milliseconds). */
function justAfter(at: Date): Date {
  return new Date(at.getTime() + 1)
}

function enqueueProfileFetch(
  ctx: Pick<EventContext, 'deps' | 'afterCommit' | 'webhookEventId'>,
  lineUserId: string,
): void {
  ctx.afterCommit(() =>
    ctx.deps.queues.enqueue(
      'identity.fetch-profile',
      { lineUserId },
      { jobId: jobIds.profile(lineUserId, externalJobKey(ctx.webhookEventId)) },
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
  const result = await applyFollow(ctx, lineUid, at, event.follow?.isUnblocked === true)
  if (!result) return 'stale'
  const { lineUser, applied, created, previous } = result

  // Back from a block, whatever isUnblocked says (LINE does not guarantee it): a profile fetched
  // while they were blocked was saved as unavailable (404). Applied, the row forgot that fetch
  // (the welcome card and the sweeper fetch it too), also after a block it never recorded when
  // isUnblocked says so; this job asks for it now.
  const unblocked = event.follow?.isUnblocked === true || (applied && previous === 'blocked')
  if (created || unblocked) enqueueProfileFetch(ctx, lineUser.id)
  if (!applied) return 'stale'
  // Issued with the customer on the first follow (same transaction); an unblock keeps the card.
  await ensureMemberCard(ctx.trx, lineUser.customer_id, cardIssueOptions(ctx.deps))
  // After a block, the menu recorded no longer counts (LINE links nothing to a blocker):
  // forgotten, or neither the link below nor a relink would send it again.
  if (!created) await forgetRichMenuOf(ctx.trx, lineUser.id)
  if (!ctx.standby) await scheduleWelcome(ctx, event, result)
  // The menu of their segment, in standby mode too: a menu link is no message (standby holds
  // back messages only, LINE-API.md §9.11), and the unlink and the relink link in standby too.
  linkRichMenuAfterCommit(ctx, lineUser.id, externalJobKey(ctx.webhookEventId))
  return ctx.standby ? 'standby' : 'handled'
}

/** The welcome: the member card, rendered when it is sent (points and coupon as they are then). */
async function scheduleWelcome(ctx: EventContext, event: webhook.FollowEvent, follow: Applied) {
  const { lineUser, created, previous } = follow
  // "Welcome back" only after a follow we saw: not to someone first met through a message, nor
  // to a row that an unfollow alone created (older data).
  const followedBefore = (lineUser.followed_at?.getTime() ?? 0) > UNKNOWN_STATUS_TIME.getTime()
  // Back from a block: still blocked, or marked back by a message that overtook this follow (no
  // follow seen since the block); isUnblocked is not promised by LINE.
  const blockedSinceFollow =
    (lineUser.blocked_at?.getTime() ?? 0) > (lineUser.followed_at?.getTime() ?? 0)
  const returning =
    !created &&
    followedBefore &&
    (event.follow?.isUnblocked === true || previous === 'blocked' || blockedSinceFollow)
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
 * and a follow that happened before it finds it there (applyFollow).
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
