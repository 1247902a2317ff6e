import type { messagingApi } from '@line/bot-sdk'
import type { LimitFunction } from 'p-limit'
import type { Deps } from '../platform/deps.ts'
import { classifyLineError } from '../platform/line.ts'
import { prepareBody } from '../platform/line-send-transport.ts'
import type { SharedLimiter } from '../platform/shared-limiter.ts'
import {
  createMulticastRequest,
  type DeliveryOutcome,
  recordMulticastAccepted,
} from './delivery.repo.ts'

/** LINE: a multicast reaches at most 500 user ids. */
export const MULTICAST_MAX_RECIPIENTS = 500

export type LineLimiters = Record<'push' | 'multicast' | 'reply', SharedLimiter> & {
  /**
   * Requests on the wire at once, at most the transport's connections: a token is taken only
   * when a connection is free, so granted requests never queue in the client and then leave in
   * a bunch (which would crowd more than the limit into one second).
   */
  inflight: LimitFunction
}

/** One delivery going out on LINE. */
export type LineItem = {
  id: string
  lineUid: string
  messages: messagingApi.Message[]
  /** Equal keys mean equal messages (a template and its final vars): candidates for multicast. */
  contentKey: string
  retryKey: string
  /** A reply token still fresh on the first attempt. */
  replyToken: string | null
  /** Set when an earlier attempt sent it in this multicast: resend the same chunk, same key. */
  multicast: { id: string; retryKey: string } | null
}

export type LineBatchResult = {
  outcomes: DeliveryOutcome[]
  /** A rate-limit 429 was seen: the whole queue should slow down. */
  rateLimited: boolean
}

/**
 * Sends a batch: fresh reply tokens first (a failed reply sent nothing, so the push follows);
 * then the same messages to several people by multicast (chunks of 500, each with a retry key
 * stored before the first call); the rest by push with the row's retry key. Every call waits
 * for the shared limiter of its endpoint. Failures become outcomes, never exceptions.
 */
export async function sendLineBatch(
  deps: Pick<Deps, 'db' | 'line' | 'log'>,
  limiters: LineLimiters,
  items: LineItem[],
): Promise<LineBatchResult> {
  const result: LineBatchResult = { outcomes: [], rateLimited: false }
  const record = (r: LineBatchResult) => {
    result.outcomes.push(...r.outcomes)
    result.rateLimited ||= r.rateLimited
  }
  const unanswered = await Promise.all(
    items.map(async (item) => {
      if (!item.replyToken || item.multicast) return item
      const sent = await tryReply(deps, limiters, item, item.replyToken)
      if (!sent) return item
      result.outcomes.push(sent)
      return null
    }),
  )
  const { multicasts, pushes } = await planMulticasts(
    deps,
    unanswered.filter((i) => i !== null),
  )
  await Promise.all([
    ...multicasts.map(async ({ id, retryKey, items: chunk }) => {
      const ids = chunk.map((i) => i.id)
      const body = prepareBody('multicast', {
        to: chunk.map((i) => i.lineUid),
        messages: chunk[0]!.messages,
      })
      const sent = await callLine(limiters, 'multicast', ids, () => deps.line.send(body, retryKey))
      record(sent)
      const accepted = sent.outcomes.find((o) => o.status === 'sent')
      if (accepted?.status === 'sent')
        await recordMulticastAccepted(deps.db, id, accepted.requestId)
    }),
    ...pushes.map(async (item) => {
      const body = prepareBody('push', { to: item.lineUid, messages: item.messages })
      record(await callLine(limiters, 'push', [item.id], () => deps.line.send(body, item.retryKey)))
    }),
  ])
  return result
}

function tryReply(
  deps: Pick<Deps, 'line' | 'log'>,
  limiters: LineLimiters,
  item: LineItem,
  replyToken: string,
): Promise<DeliveryOutcome | null> {
  const body = prepareBody('reply', { replyToken, messages: item.messages })
  return limiters.inflight(async () => {
    await limiters.reply.acquire()
    return replyOutcome(deps, item.id, () => deps.line.send(body))
  })
}

async function replyOutcome(
  deps: Pick<Deps, 'log'>,
  id: string,
  send: () => Promise<{ requestId: string | null }>,
): Promise<DeliveryOutcome | null> {
  try {
    const { requestId } = await send()
    return { id, status: 'sent', channel: 'line', requestId }
  } catch (error) {
    // A reply that failed sent nothing; the push carries the retry key.
    const why = classifyLineError(error).kind
    deps.log.info({ deliveryId: id, why }, 'reply failed, pushing')
    return null
  }
}

/**
 * Items an earlier attempt put in a multicast go again in that chunk with its key. Otherwise
 * identical messages for two or more people become new chunks of at most 500; the rest push.
 */
async function planMulticasts(deps: Pick<Deps, 'db'>, items: LineItem[]) {
  type Chunk = { id: string; retryKey: string; items: LineItem[] }
  const multicasts: Chunk[] = []
  const earlier = new Map<string, Chunk>()
  const byContent = new Map<string, LineItem[]>()
  for (const item of items) {
    if (item.multicast) {
      const chunk = earlier.get(item.multicast.id)
      if (chunk) chunk.items.push(item)
      else earlier.set(item.multicast.id, { ...item.multicast, items: [item] })
      continue
    }
    const same = byContent.get(item.contentKey)
    if (same) same.push(item)
    else byContent.set(item.contentKey, [item])
  }
  multicasts.push(...earlier.values())
  const pushes: LineItem[] = []
  for (const group of byContent.values()) {
    if (group.length < 2) {
      pushes.push(...group)
      continue
    }
    for (let i = 0; i < group.length; i += MULTICAST_MAX_RECIPIENTS) {
      const chunk = group.slice(i, i + MULTICAST_MAX_RECIPIENTS)
      const request = await createMulticastRequest(
        deps.db,
        chunk.map((c) => c.id),
      )
      multicasts.push({ ...request, items: chunk })
    }
  }
  return { multicasts, pushes }
}

type OutcomeOf<T> = T extends unknown ? Omit<T, 'id'> : never

/** One retry-keyed LINE call for these deliveries, turned into their outcomes. */
async function callLine(
  limiters: LineLimiters,
  endpoint: 'push' | 'multicast',
  ids: string[],
  send: () => Promise<{ requestId: string | null }>,
): Promise<LineBatchResult> {
  return limiters.inflight(async () => {
    await limiters[endpoint].acquire()
    return outcomesOf(ids, send)
  })
}

async function outcomesOf(
  ids: string[],
  send: () => Promise<{ requestId: string | null }>,
): Promise<LineBatchResult> {
  const each = (o: OutcomeOf<DeliveryOutcome>) => ids.map((id) => ({ ...o, id }) as DeliveryOutcome)
  try {
    const { requestId } = await send()
    return { outcomes: each({ status: 'sent', channel: 'line', requestId }), rateLimited: false }
  } catch (error) {
    const f = classifyLineError(error)
    switch (f.kind) {
      case 'already_accepted':
        return {
          outcomes: each({ status: 'sent', channel: 'line', requestId: f.acceptedRequestId }),
          rateLimited: false,
        }
      case 'rate_limited':
        return { outcomes: each({ status: 'pending', error: f.message }), rateLimited: true }
      case 'quota_exceeded':
        return {
          outcomes: each({ status: 'quota_exceeded', error: f.message }),
          rateLimited: false,
        }
      case 'transient':
        return { outcomes: each({ status: 'pending', error: f.message }), rateLimited: false }
      default: {
        const details = 'details' in f ? JSON.stringify(f.details) : ''
        const error = `LINE ${f.status}: ${f.message} ${details}`.trim()
        return { outcomes: each({ status: 'failed', error }), rateLimited: false }
      }
    }
  }
}
