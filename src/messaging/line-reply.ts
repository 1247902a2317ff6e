import type { Deps } from '../platform/deps.ts'
import { classifyLineError } from '../platform/line.ts'
import { prepareBody } from '../platform/line-send-transport.ts'
import { channelRefusalError } from './channel-refusal.ts'
import type { ClaimedDelivery } from './delivery-claim.repo.ts'
import { type DeliveryOutcome, erasedOutcome } from './delivery-outcomes.repo.ts'
import { markRepliesTrying, setReplyState } from './line-claim.repo.ts'
import type { LineBatchResult, LineClaim, LineItem, LineLimiters } from './line-send.ts'
import { REPLY_OUTCOME_UNKNOWN } from './outcome-unknown.ts'

/**
 * Replies to fresh tokens. The rows are marked `trying` first, in a statement of their own: a
 * worker that stops before recording the outcome leaves the mark, and the next claim fails the
 * row instead of pushing it (the reply may have arrived, and it had no retry key). Only rows the
 * job's claim still holds are marked and replied to: another job that claimed one since may be
 * replying (a token is spent once; the reply LINE then refused would be followed by a push).
 * Those of a customer erased since the claim are skipped, neither replied to nor pushed.
 * Replies LINE refused sent nothing: they are marked `refused` (never a reply again) and returned
 * for a push; a rate-limit 429 clears the mark instead, and the row replies again after its wait
 * (a push once the token is stale), as does a reply that never reached LINE (its connection
 * refused), with the job's retry, and one LINE refused for the channel (401, 403), after its wait.
 */
export async function sendReplies(
  deps: Pick<Deps, 'db' | 'line' | 'log'>,
  limiters: LineLimiters,
  held: LineClaim,
  items: LineItem[],
  result: LineBatchResult,
): Promise<LineItem[]> {
  if (items.length === 0) return []
  let marks: Awaited<ReturnType<typeof markRepliesTrying>>
  try {
    marks = await markRepliesTrying(
      deps.db,
      items.map((i) => i.id),
      held.claim,
    )
  } catch (err) {
    // Nothing sent: these go again with the job's retry.
    deps.log.warn({ err }, 'could not mark the replies')
    for (const i of items) {
      result.outcomes.push({ id: i.id, status: 'pending', error: 'could not mark the reply' })
    }
    return []
  }
  const { marked, erased } = marks
  for (const id of erased) result.outcomes.push(erasedOutcome(id))
  held.takenOver(items.flatMap((i) => (marked.has(i.id) || erased.has(i.id) ? [] : [i.id])))
  const refused: LineItem[] = []
  const unsent: string[] = []
  await Promise.all(
    items.map(async (item) => {
      if (!marked.has(item.id)) return
      const answer = await tryReply(deps, limiters, item, item.replyToken!)
      if (answer === 'refused') refused.push(item)
      else if (answer.status === 'pending') unsent.push(item.id)
      if (typeof answer === 'object') result.outcomes.push(answer)
    }),
  )
  if (unsent.length > 0) {
    // LINE-API.md §2.5: a rate-limit 429 is backed off and retried, as is a refusal of the
    // channel (401, 403); a reply that never reached LINE goes again with the job's retry. A reply
    // costs no quota and these sent nothing: they go again while their token is fresh (a push
    // only once it is not).
    await setReplyState(deps.db, unsent, held.claim, null).catch((err: unknown) =>
      // Left `trying`, the rows are failed at their next claim: never sent twice, but lost.
      deps.log.warn({ err }, 'could not unmark the replies that sent nothing'),
    )
  }
  // A row claimed again meanwhile keeps its mark; it is not pushed (see storePushBodies).
  await setReplyState(
    deps.db,
    refused.map((i) => i.id),
    held.claim,
    'refused',
  ).catch((err: unknown) =>
    // The pushes still go (with their retry keys): the statement that stores a push or chunk
    // marks the refused reply too (replyRefused in line-claim.repo.ts). Only rows that statement
    // does not reach (Postgres away again) keep `trying`, and are failed at their next claim.
    deps.log.warn({ err }, 'could not mark the refused replies'),
  )
  return refused
}

function tryReply(
  deps: Pick<Deps, 'line' | 'log'>,
  limiters: LineLimiters,
  item: LineItem,
  replyToken: string,
): Promise<DeliveryOutcome | 'refused'> {
  const body = prepareBody('reply', { replyToken }, item.messagesJson)
  return limiters.reply.run(() => replyOutcome(deps, item.id, () => deps.line.send(body)))
}

async function replyOutcome(
  deps: Pick<Deps, 'log'>,
  id: string,
  send: () => Promise<{ requestId: string | null }>,
): Promise<DeliveryOutcome | 'refused'> {
  try {
    const { requestId } = await send()
    return { id, status: 'sent', channel: 'line', requestId }
  } catch (error) {
    const failure = classifyLineError(error)
    if (failure.kind === 'transient') {
      // A timeout or 5xx may have delivered it, and a reply has no retry key: a push now could
      // send it twice, so it is not retried.
      return { id, status: 'failed', error: `${REPLY_OUTCOME_UNKNOWN}: ${failure.message}` }
    }
    if (failure.kind === 'rate_limited') {
      const rateLimited = { retryAfterMs: failure.retryAfterMs ?? null }
      return { id, status: 'pending', error: failure.message, rateLimited }
    }
    if (failure.kind === 'not_sent') {
      // The connection never opened: LINE got nothing, and the token is unspent.
      return { id, status: 'pending', error: failure.message }
    }
    if (failure.kind === 'channel_refused') {
      // LINE refused the channel (401, 403), not the reply: the token is unspent, and a push
      // would be refused alike. It waits, backed off (holdChannelRefused), and replies again
      // while the token is fresh (a push once it is not).
      const error = channelRefusalError(failure)
      return { id, status: 'pending', error, channelRefused: failure.status }
    }
    // Refused (expired token, other 4xx): nothing was sent; the push carries the retry key.
    deps.log.info({ deliveryId: id, why: failure.kind }, 'reply failed, pushing')
    return 'refused'
  }
}

/**
 * A reply goes while its token is fresh and nothing went out for the row before: no reply under
 * way or refused (a refused one was followed by a push; after that, only the push's key is safe).
 * A reply a rate-limit 429 refused is tried again.
 */
export function replyTokenIfFresh(row: ClaimedDelivery, now: Date): string | null {
  const fresh =
    row.reply_token !== null &&
    row.reply_state === null &&
    (row.reply_token_expires_at?.getTime() ?? 0) > now.getTime()
  return fresh ? row.reply_token : null
}
