import type { messagingApi } from '@line/bot-sdk'
import { publicBaseUrl } from '../cards/card-url.ts'
import type { ConversationContext } from '../conversation/conversation.service.ts'
import { ensureLineUser } from '../identity/identity.service.ts'
import { scheduleReply } from '../messaging/delivery.service.ts'
import type { Deps } from '../platform/deps.ts'
import { classifyLineError } from '../platform/line.ts'
import { findLinkedCustomer, insertLinkToken } from './link.repo.ts'
import { LINK_TTL_MS, sha256 } from './link-crypto.ts'
import {
  alreadyLinkedMessages,
  linkInviteMessages,
  linkNotOfferedMessages,
  linkUnavailableMessages,
} from './link-messages.ts'
import { accountProof } from './link-proof.ts'

/** The page a link token opens: `${PUBLIC_BASE_URL}/link?linkToken=…`. */
export function linkPageUrl(env: Deps['env'], linkToken: string): string {
  return `${publicBaseUrl(env)}/link?linkToken=${encodeURIComponent(linkToken)}`
}

/**
 * Postback `action=link` (when this server has a way to prove an online account). The webhook job holds a DB transaction, so the LINE call that issues
 * the link token runs after it commits; the token and the reply are then written in a short
 * transaction of their own and the reply goes out through the delivery queue (reply token).
 */
export async function startAccountLink(ctx: ConversationContext): Promise<void> {
  const lineUser = await ensureLineUser(ctx, ctx.lineUid)
  if (await findLinkedCustomer(ctx.trx, lineUser.id)) {
    await ctx.reply(alreadyLinkedMessages(), 'account-link-already')
    return
  }
  if (!accountProof(ctx.deps)) {
    // The page could not prove an online account: no link token, no button to a dead end.
    await ctx.reply(linkNotOfferedMessages(), 'account-link-not-offered')
    return
  }
  const { deps, webhookEventId, receivedAt, occurredAt, lineUid, replyToken } = ctx
  ctx.afterCommit(async () => {
    try {
      await issueAndInvite(deps, {
        webhookEventId,
        receivedAt,
        occurredAt,
        replyToken,
        lineUid,
        lineUserId: lineUser.id,
      })
    } catch (err) {
      // The event is already done: a throw here could not retry it. The shopper can tap again.
      deps.log.error({ err, webhookEventId }, 'account link invite failed')
    }
  })
}

async function issueAndInvite(
  deps: Deps,
  job: {
    webhookEventId: string
    receivedAt: Date
    occurredAt: Date
    replyToken: string | null
    lineUid: string
    lineUserId: string
  },
): Promise<void> {
  let messages: messagingApi.Message[]
  let linkToken: string | null = null
  try {
    const res = await deps.line.call('link-token', (c) => c.issueLinkToken(job.lineUid))
    linkToken = res.linkToken
    messages = linkInviteMessages(linkPageUrl(deps.env, linkToken))
  } catch (error) {
    const why = classifyLineError(error).kind
    deps.log.warn({ webhookEventId: job.webhookEventId, why }, 'could not issue a link token')
    messages = linkUnavailableMessages()
  }
  const after: (() => Promise<void>)[] = []
  await deps.db.transaction().execute(async (trx) => {
    const lineUser = await trx
      .selectFrom('line_user')
      .select(['id', 'customer_id'])
      .where('id', '=', job.lineUserId)
      .executeTakeFirstOrThrow()
    if (linkToken) {
      await insertLinkToken(trx, {
        tokenHash: sha256(linkToken),
        lineUserId: lineUser.id,
        expiresAt: new Date(deps.clock.now().getTime() + LINK_TTL_MS),
      })
    }
    await scheduleReply(
      { deps, trx, afterCommit: (fn) => after.push(fn), ...job },
      { customerId: lineUser.customer_id, lineUserId: lineUser.id, replyToken: job.replyToken },
      messages,
      linkToken ? 'account-link-invite' : 'account-link-unavailable',
    )
  })
  for (const fn of after) await fn()
}
