import { Hono } from 'hono'
import {
  acceptRetryKey,
  consumeQuota,
  countDeliverable,
  deliver,
  rejectRepeatedRetryKey,
} from './outbox.ts'
import type { SandboxEnv } from './request-pipeline.ts'
import { firstMalformedUserId, invalidProperty, isFriend, type SandboxContext } from './state.ts'

type Messages = Record<string, unknown>[]
type SendBody = { messages: Messages; to?: unknown; replyToken?: string }

const CHAT_ID = /^[UCR][0-9a-f]{32}$/

/** Sending endpoints, message validation and quota (`/v2/bot/message/...`). */
export function createMessageRoutes(ctx: SandboxContext) {
  const app = new Hono<SandboxEnv>()
  const body = (c: { get(key: 'body'): unknown }) => c.get('body') as SendBody

  app.post('/reply', (c) => {
    const { replyToken = '', messages } = body(c)
    const token = ctx.state.replyTokens.get(replyToken)
    if (!token || token.used || ctx.now() > token.expiresAt) {
      return c.json({ message: 'Invalid reply token' }, 400)
    }
    token.used = true
    const sentMessages = deliver(
      ctx,
      'reply',
      token.userId ? [token.userId] : [],
      messages,
      c.get('requestId'),
    )
    return c.json({ sentMessages })
  })

  app.post('/push', (c) => {
    const { to, messages } = body(c)
    const repeated = rejectRepeatedRetryKey(ctx, c, true)
    if (repeated) return repeated
    if (typeof to !== 'string' || !CHAT_ID.test(to)) return c.json(invalidProperty("'to'"), 400)
    // The sandbox has no groups or rooms: the bot is in none (LINE answers 400 for those), nor
    // for a user not in the channel (LINE-API.md §2.3).
    if (!ctx.state.users.has(to) || ctx.state.notInChannel.has(to)) {
      return c.json({ message: 'Failed to send messages' }, 400)
    }
    const overQuota = consumeQuota(ctx, c, countDeliverable(ctx, [to]))
    if (overQuota) return overQuota
    const sentMessages = deliver(ctx, 'push', [to], messages, c.get('requestId'))
    acceptRetryKey(ctx, c, sentMessages)
    return c.json({ sentMessages })
  })

  app.post('/multicast', (c) => {
    const { to, messages } = body(c)
    const repeated = rejectRepeatedRetryKey(ctx, c, false)
    if (repeated) return repeated
    // One malformed or non-user id (a group's), or one scripted to be refused
    // (refuseInMulticast), refuses the whole request. Other well-formed ids of users who are not
    // friends, or not in the channel (markNotInChannel), are accepted and get nothing
    // (LINE-API.md §2.3).
    const malformed = firstMalformedUserId(to as unknown[])
    const bad =
      malformed >= 0
        ? malformed
        : (to as string[]).findIndex((id) => ctx.state.refusedInMulticast.has(id))
    if (bad >= 0) return c.json(invalidProperty(`to[${bad}]`), 400)
    const userIds = (to as string[]).filter(
      (id) => ctx.state.users.has(id) && !ctx.state.notInChannel.has(id),
    )
    const overQuota = consumeQuota(ctx, c, countDeliverable(ctx, userIds))
    if (overQuota) return overQuota
    deliver(ctx, 'multicast', userIds, messages, c.get('requestId'))
    acceptRetryKey(ctx, c)
    return c.json({})
  })

  app.post('/broadcast', (c) => {
    const repeated = rejectRepeatedRetryKey(ctx, c, false)
    if (repeated) return repeated
    const friends = [...ctx.state.users.keys()].filter((id) => isFriend(ctx, id))
    const overQuota = consumeQuota(ctx, c, friends.length)
    if (overQuota) return overQuota
    deliver(ctx, 'broadcast', friends, body(c).messages, c.get('requestId'))
    acceptRetryKey(ctx, c)
    return c.json({})
  })

  // Audiences and demographics don't exist here: a narrowcast with `recipient` or `filter`
  // reaches nobody; without them it reaches every friend.
  app.post('/narrowcast', (c) => {
    const repeated = rejectRepeatedRetryKey(ctx, c, false)
    if (repeated) return repeated
    const req = c.get('body') as SendBody & { recipient?: unknown; filter?: unknown }
    const everyone = req.recipient === undefined && req.filter === undefined
    const targets = everyone ? [...ctx.state.users.keys()].filter((id) => isFriend(ctx, id)) : []
    const overQuota = consumeQuota(ctx, c, targets.length)
    if (overQuota) return overQuota
    deliver(ctx, 'narrowcast', targets, req.messages, c.get('requestId'))
    ctx.state.narrowcasts.set(c.get('requestId'), {
      acceptedAt: ctx.now(),
      targetCount: targets.length,
    })
    acceptRetryKey(ctx, c)
    return c.json({}, 202)
  })

  app.get('/progress/narrowcast', (c) => {
    const progress = ctx.state.narrowcasts.get(c.req.query('requestId') ?? '')
    if (!progress) return c.json({ message: 'Not found' }, 404)
    const acceptedTime = new Date(progress.acceptedAt).toISOString()
    return c.json({
      phase: 'succeeded',
      successCount: progress.targetCount,
      failureCount: 0,
      targetCount: progress.targetCount,
      acceptedTime,
      completedTime: acceptedTime,
    })
  })

  // The pipeline already validated `{ messages }` against ValidateMessageRequest.
  app.post('/validate/:kind{reply|push|multicast|narrowcast|broadcast}', (c) => c.json({}))

  app.get('/quota', (c) => {
    const { limit } = ctx.state.quota
    return c.json(limit === undefined ? { type: 'none' } : { type: 'limited', value: limit })
  })

  app.get('/quota/consumption', (c) => c.json({ totalUsage: ctx.state.quota.totalUsage }))

  return app
}
