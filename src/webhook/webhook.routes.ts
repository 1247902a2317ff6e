import { validateSignature } from '@line/bot-sdk'
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import { type AppEnv, describeZodError } from '../platform/http.ts'
import type { Inbox } from './inbox.ts'
import type { NewWebhookEvent } from './webhook.repo.ts'
import { callbackRequestSchema } from './webhook.schemas.ts'

export const WEBHOOK_MAX_BYTES = 1024 * 1024

export function webhookRoutes(deps: Pick<Deps, 'env' | 'metrics'>, inbox: Inbox) {
  const secret = deps.env.LINE_CHANNEL_SECRET
  return new Hono<AppEnv>().post(
    '/line',
    bodyLimit({
      maxSize: WEBHOOK_MAX_BYTES,
      onError: (c) => {
        // The rest of the body is never read: the connection cannot be reused.
        c.header('connection', 'close')
        throw new AppError(
          'PAYLOAD_TOO_LARGE',
          `webhook body is larger than ${WEBHOOK_MAX_BYTES} bytes`,
        )
      },
    }),
    async (c) => {
      const started = performance.now()
      const raw = Buffer.from(await c.req.arrayBuffer())
      const signature = c.req.header('x-line-signature')
      if (!secret) throw new AppError('UNAVAILABLE', 'LINE channel secret is not configured')
      if (!signature) throw new AppError('UNAUTHORIZED', 'missing x-line-signature header')
      if (!validateSignature(raw, secret, signature)) {
        throw new AppError('UNAUTHORIZED', 'x-line-signature does not match the body')
      }

      let json: unknown
      try {
        json = JSON.parse(raw.toString('utf8'))
      } catch {
        throw new AppError('BAD_REQUEST', 'body is not valid JSON')
      }
      const parsed = callbackRequestSchema.safeParse(json)
      if (!parsed.success) {
        const { message, fields } = describeZodError(parsed.error)
        throw new AppError('BAD_REQUEST', `invalid webhook envelope: ${message}`, {
          details: fields,
        })
      }

      const rows: NewWebhookEvent[] = parsed.data.events.map((event) => ({
        webhook_event_id: event.webhookEventId,
        type: event.type,
        mode: event.mode,
        is_redelivery: event.deliveryContext?.isRedelivery ?? false,
        occurred_at: new Date(event.timestamp),
        payload: event,
      }))
      if (rows.length > 0) {
        let results: Awaited<ReturnType<Inbox['store']>>
        try {
          results = await inbox.store(rows)
        } catch (cause) {
          throw new AppError('UNAVAILABLE', 'the event store is unavailable; retry later', {
            cause,
          })
        }
        const failed = results.find((r) => typeof r === 'object')
        if (failed) {
          c.get('log').error({ err: failed.error }, 'webhook event could not be stored')
          throw new AppError('INTERNAL', 'an event in this request could not be stored')
        }
        const fresh = rows.filter((_, i) => results[i] === 'new')
        rows.forEach((row, i) => {
          const outcome = results[i] === 'new' ? 'received' : 'duplicate'
          deps.metrics.webhookEvents.inc({ type: row.type, outcome })
        })
        void inbox.enqueue(fresh.map((r) => r.webhook_event_id))
      }
      deps.metrics.webhookRequests.observe({ status: '200' }, (performance.now() - started) / 1000)
      return c.json({}, 200)
    },
  )
}
