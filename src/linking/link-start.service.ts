import { publicBaseUrl } from '../cards/card-url.ts'
import type { ConversationContext } from '../conversation/conversation.service.ts'
import { ensureLineUser } from '../identity/identity.service.ts'
import { TOMBSTONE } from '../identity/tombstone.ts'
import type { MessageBuilder } from '../messaging/message-vars.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import { classifyLineError, type LineFailure } from '../platform/line.ts'
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

/** The builder of an account-link invite: a delivery's `builder` (see buildLinkInvite). */
export const LINK_INVITE_BUILDER = 'account-link-invite'

/**
 * Postback `action=link` (when this server has a way to prove an online account). The answer is
 * a delivery written in the event's transaction, so a worker stopping after the commit leaves it
 * to the sweeper; its link token is issued by LINE when it is sent (buildLinkInvite), not by the
 * webhook job, which never waits for LINE. It holds the LINE account's id, not its user id.
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
  const vars = { lineUserId: lineUser.id }
  await ctx.reply({ builder: LINK_INVITE_BUILDER, vars }, 'account-link-invite')
}

/**
 * Builds an account-link invite when its delivery is sent: asks LINE for a link token for the
 * LINE account, stores its hash, and returns the link button. A LINE account erased since gets
 * nothing (GONE). LINE refusing the token (a 4xx) gets the "not available right now" answer; a
 * 5xx, a timeout, a rate limit or a call that never reached LINE throws, and the delivery is
 * tried again. Each attempt that builds issues a token of its own (one not used just expires);
 * a push that may have reached LINE goes again as stored, with its token, not built again.
 */
export const buildLinkInvite: MessageBuilder = async (deps, delivery) => {
  const lineUserId = delivery.vars.lineUserId
  const lineUser =
    typeof lineUserId === 'string'
      ? await deps.db
          .selectFrom('line_user')
          .select(['id', 'line_uid'])
          .where('id', '=', lineUserId)
          .executeTakeFirst()
      : undefined
  if (!lineUser || lineUser.line_uid.startsWith(TOMBSTONE)) {
    throw new AppError('GONE', 'the LINE account of this link invite was erased')
  }
  let linkToken: string
  try {
    const res = await deps.line.call('link-token', (c) => c.issueLinkToken(lineUser.line_uid))
    linkToken = res.linkToken
  } catch (error) {
    const why = classifyLineError(error).kind
    if (TRY_AGAIN.has(why)) throw error
    deps.log.warn({ deliveryId: delivery.id, why }, 'could not issue a link token')
    return linkUnavailableMessages()
  }
  await insertLinkToken(deps.db, {
    tokenHash: sha256(linkToken),
    lineUserId: lineUser.id,
    expiresAt: new Date(deps.clock.now().getTime() + LINK_TTL_MS),
  })
  return linkInviteMessages(linkPageUrl(deps.env, linkToken))
}

/** LINE failures after which the link token is asked for again later, not given up on. */
const TRY_AGAIN = new Set<LineFailure['kind']>(['transient', 'not_sent', 'rate_limited'])
