import { validateSignature } from '@line/bot-sdk'
import { Hono } from 'hono'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import { type AppEnv, describeZodError } from '../platform/http.ts'
import { notJsonError } from '../platform/input.ts'
import { readRawBody } from '../platform/raw-body.ts'
import type { Inbox, InboxResult } from './inbox.ts'
import { callbackRequestSchema } from './webhook.schemas.ts'

export const WEBHOOK_MAX_BYTES = 1024 * 1024

export function webhookRoutes(deps: Pick<Deps, 'env' | 'metrics'>, inbox: Inbox) {
  const secret = deps.env.LINE_CHANNEL_SECRET
  const { webhookEvents } = deps.metrics
  const answered = deps.metrics.webhookRequests.labels({ status: '200' })
  return new Hono<AppEnv>().post('/line', async (c) => {
    const started = performance.now()
    const raw = await readRawBody(c, WEBHOOK_MAX_BYTES)
    const signature = c.req.header('x-line-signature')
    if (!secret) throw new AppError('UNAVAILABLE', 'LINE channel secret is not configured')
    if (!signature) throw new AppError('UNAUTHORIZED', 'missing x-line-signature header')
    if (!validateSignature(raw, secret, signature)) {
      throw new AppError('UNAUTHORIZED', 'x-line-signature does not match the body')
    }

    const text = raw.toString('utf8')
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw notJsonError()
    }
    const { events } = parseEnvelope(json)

    if (events.length > 0) {
      const webhookEventIds = events.map((e) => e.webhookEventId)
      let result: InboxResult
      try {
        result = await inbox.store({ body: text, webhookEventIds })
      } catch (cause) {
        throw new AppError('UNAVAILABLE', 'the event store is unavailable; retry later', { cause })
      }
      if ('error' in result) {
        throw new AppError('INTERNAL', 'an event in this request could not be stored', {
          cause: result.error,
        })
      }
      const fresh: string[] = []
      for (const event of events) {
        // Taken out: an event the request carries twice is new once.
        const isNew = result.fresh.delete(event.webhookEventId)
        if (isNew) fresh.push(event.webhookEventId)
        webhookEvents.inc({ type: event.type, outcome: isNew ? 'received' : 'duplicate' })
      }
      void inbox.enqueue(fresh)
    }
    answered.observe((performance.now() - started) / 1000)
    return c.json({}, 200)
  })
}

/** The envelope, or a 400 naming every bad field. */
function parseEnvelope(json: unknown) {
  const parsed = callbackRequestSchema.safeParse(json)
  if (parsed.success) return parsed.data
  const { message, fields } = describeZodError(parsed.error)
  throw new AppError('BAD_REQUEST', `invalid webhook envelope: ${message}`, { details: fields })
}
