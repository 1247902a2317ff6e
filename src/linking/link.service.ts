import type { messagingApi, webhook } from '@line/bot-sdk'
import { sql } from 'kysely'
import { cardIssueOptions, ensureMemberCard } from '../cards/cards.service.ts'
import type { ConversationContext } from '../conversation/conversation.service.ts'
import { attachIdentity, OtherShopAccount } from '../customers/merge.service.ts'
import { ensureLineUser } from '../identity/identity.service.ts'
import { lockLineUsers } from '../identity/line-user-lock.service.ts'
import { externalJobKey } from '../jobs.ts'
import { scheduleReply } from '../messaging/delivery.service.ts'
import type { Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { linkRichMenuAfterCommit } from '../richmenu/richmenu-link.service.ts'
import type { EventContext, EventOutcome } from '../webhook/event-context.ts'
import {
  findLinkedCustomer,
  finishNonce,
  insertAccountLink,
  insertLinkAudit,
  lockActiveLink,
  lockNonce,
  markUnlinked,
} from './link.repo.ts'
import { sha256 } from './link-crypto.ts'
import { moveLineAccountToNewCustomer, setCustomerEmailIfEmpty } from './link-customer.repo.ts'
import {
  linkConflictMessages,
  linkExpiredMessages,
  linkedMessages,
  linkOtherShopAccountMessages,
  notLinkedMessages,
  secondLinkRefusedMessages,
  unlinkedMessages,
} from './link-messages.ts'

/**
 * LINE's `accountLink` event (once per event: the webhook job locks and marks it). `ok`: the
 * nonce (single use, 10 minutes, issued for this LINE account) names the proven online identity,
 * which is attached to the LINE user's customer; a customer already holding it is merged in
 * (purchases, points, email), unless it has its own LINE account, or the LINE user's customer
 * would end with two shop accounts (OtherShopAccount): then nothing changes and the shopper is
 * told. `failed` carries no source or reply token: the nonce is ended and logged.
 */
export async function handleAccountLink(
  ctx: EventContext,
  event: webhook.AccountLinkEvent,
): Promise<EventOutcome> {
  const now = ctx.deps.clock.now()
  // The LINE user before the nonce, as an erasure takes them (it holds the LINE user, then
  // clears the person's nonces): nonce first, the two could wait for each other.
  const lineUid = event.source?.userId
  if (lineUid) await lockLineUsers(ctx.trx, [lineUid])
  const nonce = await lockNonce(ctx.trx, sha256(event.link.nonce))
  if (event.link.result !== 'ok') {
    if (nonce?.status === 'issued') await finishNonce(ctx.trx, nonce.nonce_hash, 'failed', now)
    await insertLinkAudit(ctx.trx, { action: 'link-failed', lineUserId: nonce?.line_user_id })
    ctx.deps.log.warn(
      { webhookEventId: ctx.webhookEventId, knownNonce: nonce !== undefined },
      'LINE reported a failed account link',
    )
    return 'handled'
  }
  if (!lineUid) return 'ignored'
  const lineUser = await ensureLineUser(ctx, lineUid)
  const reply = async (messages: messagingApi.Message[], kind: string) => {
    if (ctx.standby) return
    const to = {
      customerId: lineUser.customer_id,
      lineUserId: lineUser.id,
      replyToken: event.replyToken ?? null,
    }
    await scheduleReply(ctx, to, messages, kind)
  }

  // The nonce had to be valid when the shopper confirmed in LINE (the event's time, signed by
  // LINE), not when a worker gets to the event: the inbox may hold it through an outage. Single
  // use still stops a replay; a clock ahead of ours never extends the nonce.
  const confirmedAt = Math.min(event.timestamp, now.getTime())
  const identityValue = nonce?.identity_value
  if (nonce?.status !== 'issued' || nonce.expires_at.getTime() <= confirmedAt || !identityValue) {
    await reply(linkExpiredMessages(), 'account-link-expired')
    return 'handled'
  }
  if (nonce.line_user_id !== lineUser.id) {
    // Issued for another LINE account's link token: never link across accounts. The nonce is
    // left as it is: its own LINE account may still use it.
    await insertLinkAudit(ctx.trx, { action: 'link-rejected', lineUserId: lineUser.id })
    await reply(linkExpiredMessages(), 'account-link-expired')
    return 'handled'
  }
  await finishNonce(ctx.trx, nonce.nonce_hash, 'used', now)
  // One online account at a time: a nonce from a link token issued before the LINE account was
  // linked (each "link" tap issues one, valid 10 minutes) would otherwise merge a second online
  // customer into it for good. Two links racing here both find none; the unique active link
  // (account_link_line_user_id_key) then fails one, whose retry lands here.
  if (await lockActiveLink(ctx.trx, lineUser.id)) {
    await insertLinkAudit(ctx.trx, {
      action: 'link-rejected',
      lineUserId: lineUser.id,
      customerId: lineUser.customer_id,
      detail: { reason: 'already-linked' },
    })
    await reply(secondLinkRefusedMessages(), 'account-link-second-refused')
    return 'handled'
  }
  const kind = nonce.identity_kind === 'online_customer' ? 'online_customer' : 'email'

  await sql`savepoint kizuna_link`.execute(ctx.trx)
  let attached: Awaited<ReturnType<typeof attachIdentity>>
  try {
    attached = await attachIdentity(ctx.trx, lineUser.customer_id, kind, identityValue, {
      env: ctx.deps.env,
      reason: 'account-link',
    })
    await sql`release savepoint kizuna_link`.execute(ctx.trx)
  } catch (error) {
    if (!(error instanceof AppError) || !['CONFLICT', 'GONE'].includes(error.code)) throw error
    await sql`rollback to savepoint kizuna_link`.execute(ctx.trx)
    // The friend's customer has a shop account (an order matched by their email gave it) and the
    // proven account is, or its customer holds, another one: two are never merged.
    const otherShop = error instanceof OtherShopAccount
    await insertLinkAudit(ctx.trx, {
      action: 'link-conflict',
      lineUserId: lineUser.id,
      customerId: lineUser.customer_id,
      detail: { kind, code: error.code, ...(otherShop && { reason: 'other-shop-account' }) },
    })
    if (otherShop) await reply(linkOtherShopAccountMessages(), 'account-link-other-shop-account')
    else await reply(linkConflictMessages(), 'account-link-conflict')
    return 'handled'
  }

  if (kind === 'email') await setCustomerEmailIfEmpty(ctx.trx, attached.customerId, identityValue)
  await insertAccountLink(ctx.trx, {
    lineUserId: lineUser.id,
    customerId: attached.customerId,
    identityKind: kind,
    // When the shopper confirmed, on LINE's clock as the taps an unlink compares it with.
    linkedAt: new Date(confirmedAt),
  })
  await insertLinkAudit(ctx.trx, {
    action: 'link',
    lineUserId: lineUser.id,
    customerId: attached.customerId,
    detail: { kind, mergedCustomerId: attached.mergedCustomerId, created: attached.created },
  })
  // Linked to an online account: the menu of their new segment.
  linkRichMenuAfterCommit(ctx, lineUser.id, externalJobKey(ctx.webhookEventId))
  await reply(linkedMessages(), 'account-link-done')
  return 'handled'
}

/** Whether the LINE user's account is linked to an online account now. */
export async function isLinkedToOnlineAccount(db: Db, lineUserId: string): Promise<boolean> {
  return (await findLinkedCustomer(db, lineUserId)) !== undefined
}

/**
 * Postback `action=unlink`. After a link the LINE account and the online account are one
 * customer, so unlinking gives the LINE account a new customer of its own; purchases, points,
 * cards, coupons, email and the rest stay with the (online) customer. The LINE-only customer gets
 * its member card now, without the welcome coupon: this person had theirs (it stayed with the
 * online customer), and a card issued later would bring a new one on every unlink, all of them
 * back on one customer when the accounts are linked again.
 *
 * A tap made before the active link (an Unlink from an earlier link, whose job ran late: a retry,
 * a sweep) is stale: the link it meant is gone, and the newer one stays, unanswered.
 */
export async function unlinkAccount(ctx: ConversationContext): Promise<'stale' | undefined> {
  const lineUser = await ensureLineUser(ctx, ctx.lineUid)
  const link = await lockActiveLink(ctx.trx, lineUser.id)
  if (!link) {
    await ctx.reply(notLinkedMessages(), 'account-unlink-none')
    return
  }
  if (ctx.occurredAt < link.linked_at) {
    ctx.deps.log.info({ webhookEventId: ctx.webhookEventId }, 'unlink tapped before the link')
    return 'stale'
  }
  const newCustomerId = await moveLineAccountToNewCustomer(ctx.trx, lineUser)
  await ensureMemberCard(ctx.trx, newCustomerId, {
    ...cardIssueOptions(ctx.deps),
    welcomeCoupon: false,
  })
  await markUnlinked(ctx.trx, link.id, newCustomerId, ctx.deps.clock.now())
  await insertLinkAudit(ctx.trx, {
    action: 'unlink',
    lineUserId: lineUser.id,
    customerId: lineUser.customer_id,
    detail: { newCustomerId },
  })
  // A customer of its own now: the menu of that customer's segment.
  linkRichMenuAfterCommit(ctx, lineUser.id, externalJobKey(ctx.webhookEventId))
  await ctx.reply(unlinkedMessages(), 'account-unlink-done')
}
