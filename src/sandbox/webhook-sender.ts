import { createHmac } from 'node:crypto'
import type { webhook } from '@line/bot-sdk'
import { notifyPage, type SandboxContext, type WebhookDelivery } from './state.ts'
import { asRedelivery } from './webhook-events.ts'

export type DeliverWebhookOptions = {
  /** Sent as `x-line-signature` instead of the real one (to test rejection). */
  signatureOverride?: string
  /** Marks every event `deliveryContext.isRedelivery: true` (and revives unused reply tokens). */
  redelivery?: boolean
  /** Overrides the platform's webhook URL for this one delivery. */
  url?: string
}

export type WebhookResult = {
  status: number
  body: webhook.CallbackRequest
  error?: WebhookDelivery['error']
  responseText?: string
}

/** LINE's signature: base64(HMAC-SHA256(channel secret, raw body)). */
export function signWebhookBody(channelSecret: string, rawBody: string | Buffer): string {
  return createHmac('sha256', channelSecret).update(rawBody).digest('base64')
}

/**
 * The body as JSON with every non-ASCII character written as a `\uXXXX` escape (`🤨` as
 * `\uD83E\uDD28`), as LINE's bodies may carry them (LINE-API.md §1.2, §9.1): a receiver that
 * signs a parsed and re-serialised body instead of the bytes it got then fails on any emoji or
 * Japanese text, as it would with LINE.
 */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u0080-\uffff]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`,
  )
}

/**
 * POSTs a signed envelope to the webhook URL like the LINE platform: UTF-8 JSON, signature header,
 * and a timeout (2 s by default). Without a webhook URL nothing is sent and `status` is 0.
 */
export async function deliverWebhook(
  ctx: SandboxContext,
  envelope: webhook.CallbackRequest,
  opts: DeliverWebhookOptions = {},
): Promise<WebhookResult> {
  const body = opts.redelivery ? asRedelivery(ctx, envelope) : envelope
  const url = opts.url ?? ctx.webhookUrl
  const record = (result: WebhookResult): WebhookResult => {
    ctx.state.webhookDeliveries.push({
      at: ctx.now(),
      url: url ?? '',
      status: result.status,
      error: result.error,
      body,
    })
    notifyPage(ctx) // the sandbox page shows how the last delivery went
    return result
  }
  if (!url) return record({ status: 0, body, error: 'no_webhook_url' })
  const raw = asciiJson(body)
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'user-agent': 'LineBotWebhook/2.0',
        'x-line-signature': opts.signatureOverride ?? signWebhookBody(ctx.channelSecret, raw),
      },
      body: raw,
      signal: AbortSignal.any([AbortSignal.timeout(ctx.webhookTimeoutMs), ctx.closing.signal]),
    })
    const responseText = await res.text()
    const error = res.ok ? undefined : ('error_status_code' as const)
    return record({ status: res.status, body, error, responseText })
  } catch (err) {
    const timedOut = err instanceof Error && err.name === 'TimeoutError'
    return record({ status: 0, body, error: timedOut ? 'request_timeout' : 'could_not_connect' })
  }
}
