import type { Deps } from '../platform/deps.ts'
import { classifyLineError } from '../platform/line.ts'
import { prepareBody, preparedBody } from '../platform/line-send-transport.ts'
import type { SharedLimiter } from '../platform/shared-limiter.ts'
import { channelRefusalError } from './channel-refusal.ts'
import { forgetRefusedChunk, recordMulticastAccepted } from './chunk-deliveries.repo.ts'
import {
  type RecipientRefusal,
  recipientRefusalOf,
  recipientsOf,
  refusedByLine,
  splitRefusedChunk,
} from './chunk-refusal.ts'
import type { ClaimOutcomes } from './claim-outcomes.ts'
import { type DeliveryOutcome, erasedOutcome } from './delivery-outcomes.repo.ts'
import { storePushBodies } from './line-claim.repo.ts'
import { type Chunk, planMulticasts } from './line-multicast.ts'
import { sendReplies } from './line-reply.ts'

/**
 * One shared limiter per sending endpoint. Each starts a call at its slot and keeps at most its
 * own `inFlight` under way, and the transport has a connection for every one of them, so a call
 * never waits for a connection after its slot (it would then leave in a bunch with others and
 * crowd more than the limit into one second), and calls waiting for one endpoint's slots never
 * hold up another endpoint's.
 */
export type LineLimiters = Record<'push' | 'multicast' | 'reply', SharedLimiter>

/** One delivery going out on LINE. */
export type LineItem = {
  id: string
  lineUid: string
  /** The messages, serialised once when rendered (`JSON.stringify(messages)`). */
  messagesJson: string
  /** Equal keys mean equal messages (a template and its final vars): candidates for multicast. */
  contentKey: string
  retryKey: string
  /** A fresh reply token, if no reply for the row was under way or refused before. */
  replyToken: string | null
}

/** A push request as first sent (JSON text): sent again byte for byte under the same key. */
export type StoredPush = { id: string; retryKey: string; body: string }

/**
 * A delivery of a multicast chunk sent before (`chunkId`), whose request (JSON text) goes again
 * byte for byte under the chunk's key, for this and every other delivery in it; `lineUid`: the
 * person's LINE user id, as the chunk names them.
 */
export type StoredChunk = StoredPush & { chunkId: string; lineUid: string }

/** Requests an earlier attempt sent that may have reached LINE: repeated as they are. */
export type StoredRequests = { pushes: StoredPush[]; chunks: StoredChunk[] }

/**
 * The job's claim on its rows: the writes before each LINE call require it, and rows found
 * claimed again since (the job outlived the lease) are reported taken over and not sent.
 */
export type LineClaim = Pick<ClaimOutcomes, 'claim' | 'takenOver'>

/** Each delivery's outcome; a rate-limited one says so itself (backed off: rate-limit-backoff.ts). */
export type LineBatchResult = { outcomes: DeliveryOutcome[] }

/**
 * Sends a batch: fresh reply tokens first (a refused reply sent nothing, so the push follows; a
 * rate-limited one is tried again after its wait); then the same messages to several people by
 * multicast (chunks of 500, each with a retry key stored before the first call); the rest by
 * push with the row's retry key, each request stored before its first call. Pushes and chunks an
 * earlier attempt sent (`again`) repeat their stored request. A chunk LINE refuses for its
 * recipients (a 400 naming `to[N]`) is split (splitRefusedChunk): the one LINE named fails, the
 * others go by push in this job (a repeated chunk's on a retry); any 400 to a chunk forgets its
 * first call on all its deliveries, whichever job holds them. Each call goes only for rows the
 * job's claim still holds, as the write or read before it finds (line-claim.repo.ts); the others
 * get no outcome. Every call waits for the shared limiter of its endpoint. Failures become
 * outcomes, never exceptions; a 400, and a 429 (rate limit or monthly quota), a refusal of the
 * channel (401, 403: `channelRefused`, pending) or a call that never reached LINE (its connection
 * refused) to a new request, mark it `keyUnused` (LINE took nothing under the key).
 */
export async function sendLineBatch(
  deps: Pick<Deps, 'db' | 'line' | 'log'>,
  limiters: LineLimiters,
  held: LineClaim,
  items: LineItem[],
  again: StoredRequests = { pushes: [], chunks: [] },
): Promise<LineBatchResult> {
  const result: LineBatchResult = { outcomes: [] }
  const record = (r: LineBatchResult) => {
    result.outcomes.push(...r.outcomes)
  }
  const replying: LineItem[] = []
  const unanswered: LineItem[] = []
  for (const item of items) (item.replyToken ? replying : unanswered).push(item)
  unanswered.push(...(await sendReplies(deps, limiters, held, replying, result)))
  const { multicasts, pushes, unplanned, erased } = await planMulticasts(
    deps,
    held,
    unanswered,
    again.chunks,
  )
  for (const id of unplanned) {
    result.outcomes.push({ id, status: 'pending', error: 'could not plan the multicast' })
  }
  for (const id of erased) result.outcomes.push(erasedOutcome(id))
  // Pushes sent before (`again`) repeat a request under a key LINE may hold; the rest are new.
  const repeated = new Set(again.pushes.map((p) => p.id))
  const push = async ({ id, retryKey, body }: StoredPush) => {
    const request = preparedBody('push', body)
    const send = () => deps.line.send(request, retryKey)
    record(await callLine(limiters, 'push', [id], !repeated.has(id), send))
  }
  const pushAll = async (requests: StoredPush[]) => {
    const stored = await storePushes(deps, held, requests, result)
    await Promise.all(stored.map(push))
  }
  const byId = new Map(unanswered.map((item) => [item.id, item]))
  const repeatedUids = new Map(again.chunks.map((c) => [c.id, c.lineUid]))
  await Promise.all([
    ...multicasts.map(async (chunk) => {
      const { id, retryKey, body, ids } = chunk
      const request = preparedBody('multicast', body)
      let refused = false
      let refusal = null as RecipientRefusal | null
      const send = () =>
        deps.line.send(request, retryKey).catch((error: unknown) => {
          refused = refusedByLine(error)
          refusal = recipientRefusalOf(error)
          throw error
        })
      const sent = await callLine(limiters, 'multicast', ids, chunk.isNew, send, id)
      // LINE took nothing under the chunk's key: no delivery of it repeats the chunk again,
      // whichever job holds it.
      if (refused) await forgetChunk(deps, chunk)
      if (refusal) {
        // LINE sent to nobody: the others are new pushes.
        const split = splitRefusedChunk(chunk, refusal, sent.outcomes, byId, repeatedUids)
        deps.log.warn(
          { multicastRequestId: id, deliveries: ids.length, pushed: split.pushes.length },
          'LINE refused a multicast for its recipients: the others go by push',
        )
        result.outcomes.push(...split.outcomes)
        return pushAll(split.pushes.map(freshPush))
      }
      record(sent)
      const accepted = sent.outcomes.find((o) => o.status === 'sent')
      if (accepted?.status === 'sent') {
        // Informational: the deliveries carry the request id already.
        await recordMulticastAccepted(deps.db, id, accepted.requestId).catch((err: unknown) =>
          deps.log.warn({ err, multicastRequestId: id }, 'could not record the multicast'),
        )
      }
    }),
    pushAll([...again.pushes, ...pushes.map(freshPush)]),
  ])
  return result
}

/**
 * Forgets the first call of a chunk LINE refused on all its deliveries (forgetRefusedChunk); if
 * that cannot be written, those of other jobs repeat it, and LINE refuses it again.
 */
async function forgetChunk(deps: Pick<Deps, 'db' | 'log'>, chunk: Chunk): Promise<void> {
  await forgetRefusedChunk(deps.db, chunk.id, recipientsOf(chunk.body)).catch((err: unknown) =>
    deps.log.warn({ err, multicastRequestId: chunk.id }, 'could not forget a refused multicast'),
  )
}

/** A new push of the item, under the row's own retry key. */
const freshPush = (item: LineItem): StoredPush => ({
  id: item.id,
  retryKey: item.retryKey,
  body: prepareBody('push', { to: item.lineUid }, item.messagesJson).json,
})

/**
 * Stores push requests before they go (one sent before, again: the same body), on the rows the
 * claim still holds, and returns those; any that could not be stored wait for a retry, and those
 * of a customer erased since the claim are skipped.
 */
async function storePushes(
  deps: Pick<Deps, 'db' | 'log'>,
  held: LineClaim,
  pushes: StoredPush[],
  result: LineBatchResult,
): Promise<StoredPush[]> {
  try {
    const { stored, erased } = await storePushBodies(deps.db, pushes, held.claim)
    for (const id of erased) result.outcomes.push(erasedOutcome(id))
    held.takenOver(pushes.flatMap((p) => (stored.has(p.id) || erased.has(p.id) ? [] : [p.id])))
    return pushes.filter((p) => stored.has(p.id))
  } catch (err) {
    // Nothing sent: these go again with the job's retry.
    deps.log.warn({ err }, 'could not store the push requests')
    for (const p of pushes) {
      result.outcomes.push({ id: p.id, status: 'pending', error: 'could not store the push' })
    }
    return []
  }
}

type OutcomeOf<T> = T extends unknown ? Omit<T, 'id'> : never

/**
 * One retry-keyed LINE call for these deliveries, turned into their outcomes. `isNew`: the first
 * request under its key (none went before). `call` names a call made for several (a multicast
 * chunk's id): their rate-limit 429 is backed off as one.
 */
async function callLine(
  limiters: LineLimiters,
  endpoint: 'push' | 'multicast',
  ids: string[],
  isNew: boolean,
  send: () => Promise<{ requestId: string | null }>,
  call?: string,
): Promise<LineBatchResult> {
  return limiters[endpoint].run(() => outcomesOf(ids, isNew, send, call))
}

async function outcomesOf(
  ids: string[],
  isNew: boolean,
  send: () => Promise<{ requestId: string | null }>,
  call: string | undefined,
): Promise<LineBatchResult> {
  const each = (o: OutcomeOf<DeliveryOutcome>) => ids.map((id) => ({ ...o, id }) as DeliveryOutcome)
  try {
    const { requestId } = await send()
    return { outcomes: each({ status: 'sent', channel: 'line', requestId }) }
  } catch (error) {
    const f = classifyLineError(error)
    // For an answer that proves LINE took nothing: only of a new request's key, as a repeat
    // (after a 5xx) may have been delivered, and keeps what it stored.
    const unused = isNew ? { keyUnused: true as const } : {}
    switch (f.kind) {
      case 'already_accepted':
        return {
          outcomes: each({ status: 'sent', channel: 'line', requestId: f.acceptedRequestId }),
        }
      case 'rate_limited': {
        // LINE refused it: a new request leaves its key unused (its first call forgotten, so
        // the row neither skips the weekly cap nor counts in it, and a chunk is dissolved).
        const rateLimited = { retryAfterMs: f.retryAfterMs ?? null, ...(call ? { call } : {}) }
        return {
          outcomes: each({ status: 'pending', error: f.message, rateLimited, ...unused }),
        }
      }
      case 'quota_exceeded':
        // Parked. Refused too, but as above only the first request under the key proves LINE
        // took nothing: a repeat (after a 5xx) may have been delivered, and keeps what it stored.
        return { outcomes: each({ status: 'quota_exceeded', error: f.message, ...unused }) }
      case 'channel_refused': {
        // A 401 (the token) or 403 (the plan or account): LINE refused the channel before the
        // request, and will refuse every one until an operator fixes it. It waits, backed off
        // (holdChannelRefused), never failed for it; a new request's key unused, as after a 429.
        const error = channelRefusalError(f)
        return { outcomes: each({ status: 'pending', error, channelRefused: f.status, ...unused }) }
      }
      case 'transient':
        return { outcomes: each({ status: 'pending', error: f.message }) }
      case 'not_sent':
        // The connection never opened: LINE took nothing, and a new request leaves its key
        // unused, as after a 429 (a row neither counted in the weekly cap nor barred from email,
        // and a chunk dissolved). A repeat keeps its first call: the earlier request may have
        // reached LINE.
        return { outcomes: each({ status: 'pending', error: f.message, ...unused }) }
      default: {
        const details = 'details' in f ? JSON.stringify(f.details) : ''
        const error = `LINE ${f.status}: ${f.message} ${details}`.trim()
        // A 400 (LINE_REFUSED): LINE validated the request and took nothing under its key (one
        // it had accepted gets a 409), so the key's first call is forgotten now, as for a 429 to
        // a new request. Other answers (a 404) say nothing about an earlier request.
        const keyUnused = f.status === 400 ? { keyUnused: true as const } : {}
        return { outcomes: each({ status: 'failed', error, ...keyUnused }) }
      }
    }
  }
}
