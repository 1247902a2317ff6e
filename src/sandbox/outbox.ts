import { createHash } from 'node:crypto'
import type { Context } from 'hono'
import type { SandboxEnv } from './request-pipeline.ts'
import {
  isFriend,
  notifyPage,
  randomHex,
  type SandboxContext,
  type SendEndpoint,
  type SentMessage,
} from './state.ts'

const RETRY_KEY_TTL_MS = 24 * 60 * 60 * 1000
export const QUOTA_EXCEEDED = 'You have reached your monthly limit.'

type Message = Record<string, unknown>

/**
 * Appends the messages to each recipient's inbox. Like LINE, recipients who are not friends
 * (never added, blocked, unknown) silently get nothing. Returns one `SentMessage` per message.
 */
export function deliver(
  ctx: SandboxContext,
  endpoint: SendEndpoint,
  userIds: readonly string[],
  messages: readonly Message[],
  requestId: string,
): SentMessage[] {
  const sent = messages.map((message) => ({
    id: ctx.newMessageId(),
    ...(quotable(message) ? { quoteToken: randomHex(24) } : {}),
  }))
  const at = ctx.now()
  for (const userId of new Set(userIds)) {
    if (!isFriend(ctx, userId)) continue
    const inbox = ctx.state.inboxes.get(userId) ?? []
    messages.forEach((message, i) => {
      ctx.state.feed.push({ userId, kind: 'received', index: inbox.length })
      inbox.push({ ...sent[i]!, at, endpoint, requestId, message })
    })
    ctx.state.inboxes.set(userId, inbox)
  }
  notifyPage(ctx)
  return sent
}

/** Recipients that count against the monthly quota (friends only, reply is free). */
export function countDeliverable(ctx: SandboxContext, userIds: readonly string[]): number {
  return [...new Set(userIds)].filter((id) => isFriend(ctx, id)).length
}

/** 429 when the simulated monthly quota can't cover `needed` more messages; else consumes it. */
export function consumeQuota(
  ctx: SandboxContext,
  c: Context<SandboxEnv>,
  needed: number,
): Response | undefined {
  const { quota } = ctx.state
  if (quota.limit !== undefined && quota.totalUsage + Math.max(needed, 1) > quota.limit) {
    return c.json({ message: QUOTA_EXCEEDED }, 429)
  }
  quota.totalUsage += needed
  return undefined
}

/**
 * 409 when this request's `X-Line-Retry-Key` was accepted, and its first attempt was less than
 * 24 hours ago: LINE counts the key's 24 hours from its first request (LINE-API.md §2.4).
 */
export function rejectRepeatedRetryKey(
  ctx: SandboxContext,
  c: Context<SandboxEnv>,
  includeSentMessages: boolean,
): Response | undefined {
  const key = c.req.header('x-line-retry-key')?.toLowerCase()
  if (!key) return undefined
  const prior = ctx.state.retryKeys.get(key)
  const since = ctx.state.retryKeyFirstAttempts.get(key)?.at ?? prior?.at ?? 0
  if (!prior || ctx.now() - since >= RETRY_KEY_TTL_MS) return undefined
  const body =
    includeSentMessages && prior.sentMessages
      ? { message: 'The retry key is already accepted', sentMessages: prior.sentMessages }
      : { message: 'The retry key is already accepted' }
  return c.json(body, 409, { 'x-line-accepted-request-id': prior.requestId })
}

export function acceptRetryKey(
  ctx: SandboxContext,
  c: Context<SandboxEnv>,
  sentMessages?: SentMessage[],
): void {
  const key = c.req.header('x-line-retry-key')?.toLowerCase()
  if (!key) return
  ctx.state.retryKeys.set(key, { requestId: c.get('requestId'), at: ctx.now(), sentMessages })
}

/**
 * Notes a request's retry key (arrived at `at`, answered `status`; 0: no answer) as attempted:
 * the first attempt starts the key's 24 hours, or a new 24 hours once they are over, and its
 * body is the one the key carries for them. Whatever reached LINE counts, a 5xx or a lost answer
 * included; a 4xx refusal took nothing under the key.
 */
export function noteRetryKeyAttempt(
  ctx: SandboxContext,
  key: string | undefined,
  at: number,
  status: number,
  body: Uint8Array,
): void {
  if (!key || (status >= 400 && status < 500)) return
  const attempts = ctx.state.retryKeyFirstAttempts
  const first = attempts.get(key.toLowerCase())
  if (first === undefined || at - first.at >= RETRY_KEY_TTL_MS) {
    attempts.set(key.toLowerCase(), { at, bodyHash: hashOf(body) })
  }
}

/**
 * 400 when this request's retry key, within its 24 hours, first went with another body (byte
 * for byte): LINE wants a retry to repeat the first request's body, and leaves another body
 * under the key undefined (LINE-API.md §2.4, §9.5). Answered 409 (or taken), a sender that
 * rebuilt a request differently would pass its tests; refused, its delivery fails loudly.
 */
export function rejectRetryKeyWithOtherBody(
  ctx: SandboxContext,
  c: Context<SandboxEnv>,
  body: Uint8Array,
): Response | undefined {
  const key = c.req.header('x-line-retry-key')?.toLowerCase()
  const first = key ? ctx.state.retryKeyFirstAttempts.get(key) : undefined
  if (!first || ctx.now() - first.at >= RETRY_KEY_TTL_MS) return undefined
  if (first.bodyHash === hashOf(body)) return undefined
  return c.json(
    {
      message:
        'The retry key was already used with a different body: a retry must repeat the first ' +
        "request's body byte for byte (what LINE does otherwise is undefined)",
    },
    400,
  )
}

function hashOf(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('base64')
}

function quotable(message: Message): boolean {
  return ['text', 'textV2', 'sticker', 'image', 'video'].includes(String(message.type))
}
