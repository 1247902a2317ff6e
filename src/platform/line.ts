import { HTTPFetchError, LineBotClient } from '@line/bot-sdk'
import type { Env } from '../config/env.ts'
import { type HourlyBudget, HourlyLimitReached } from './hourly-budget.ts'
import type { LinePacing } from './line-pacing.ts'
import { createLineSendTransport, type LineSendTransport } from './line-send-transport.ts'
import type { Metrics } from './metrics.ts'
import { PacingUnavailable } from './pacing-unavailable.ts'
import { TimeoutError, withTimeout } from './timeout.ts'

export type LineFailure =
  | { kind: 'already_accepted'; status: 409; acceptedRequestId: string | null }
  | {
      kind: 'rate_limited'
      status: 429
      message: string
      /** Known when Kizuna held the call back itself (an hourly budget used up). */
      retryInMs?: number
      /** LINE's Retry-After, when it sent one (undocumented: LINE-API.md §2.5). */
      retryAfterMs?: number
    }
  | { kind: 'quota_exceeded'; status: 429; message: string }
  | { kind: 'invalid_reply_token'; status: 400; message: string }
  | { kind: 'rejected'; status: number; message: string; details: unknown }
  /**
   * LINE refused the channel, not the request (LINE-API.md §2.6): a 401 (the channel access
   * token: wrong, revoked, reissued since) or a 403 (not allowed for the channel's plan or
   * account). Nothing was sent, and every call is refused alike until an operator fixes it.
   */
  | { kind: 'channel_refused'; status: 401 | 403; message: string }
  /** A 5xx or no answer (a timeout, a connection lost): the request may have reached LINE. */
  | { kind: 'transient'; status: number | null; message: string }
  /**
   * The call failed before its connection opened (NOT_CONNECTED): no byte of the request left,
   * so LINE got nothing, under its retry key or as a reply.
   */
  | { kind: 'not_sent'; status: null; message: string }

export type Line = {
  client: LineBotClient
  /**
   * Runs one LINE call with a timeout, counting it by endpoint and status. An endpoint limited
   * per hour takes from the channel's hourly budget first (HourlyLimitReached when used up);
   * any other waits for its slot in the endpoint's shared per-second limiter.
   */
  call<T>(endpoint: string, fn: (client: LineBotClient) => Promise<T>): Promise<T>
  /** Reply, push and multicast: the delivery engine's hot path (see line-send-transport.ts). */
  send: LineSendTransport['send']
  /**
   * Until called again with null, every call and send first awaits `gate`, and fails as it does,
   * unsent (its error a LINE_CALL_HELD one, or LINE's own 401/403): the channel's check after a
   * start LINE did not answer (watchLineChannel).
   */
  holdUntil(gate: (() => Promise<void>) | null): void
  close(): Promise<void>
}

/**
 * The `code` of an error that stopped a LINE call before it was made (the channel not checked
 * yet, or another channel's: see watchLineChannel): nothing was sent, as for a connection that
 * never opened (classifyLineError: `not_sent`).
 */
export const LINE_CALL_HELD = 'KIZUNA_LINE_CALL_HELD'

export function createLine(
  env: Pick<
    Env,
    | 'LINE_CHANNEL_ACCESS_TOKEN'
    | 'LINE_API_BASE_URL'
    | 'LINE_DATA_API_BASE_URL'
    | 'LINE_TIMEOUT_MS'
    | 'LINE_CALLS_UNDER_WAY'
  >,
  metrics: Metrics,
  /**
   * The channel's hourly budget and per-second limiters, shared in Redis; without them nothing
   * is held back here (a CLI command without Redis, making a call or two).
   */
  limits: { hourly?: HourlyBudget; pacing?: LinePacing } = {},
): Line {
  const { hourly, pacing } = limits
  if (!env.LINE_CHANNEL_ACCESS_TOKEN) throw new Error('LINE_CHANNEL_ACCESS_TOKEN is not set')
  const client = LineBotClient.fromChannelAccessToken({
    channelAccessToken: env.LINE_CHANNEL_ACCESS_TOKEN,
    apiBaseURL: env.LINE_API_BASE_URL,
    dataApiBaseURL: env.LINE_DATA_API_BASE_URL,
  })
  const transport = createLineSendTransport(env, metrics)
  let gate: (() => Promise<void>) | null = null
  return {
    client,
    send: (body, retryKey) =>
      gate ? gate().then(() => transport.send(body, retryKey)) : transport.send(body, retryKey),
    holdUntil(next) {
      gate = next
    },
    close: transport.close,
    async call(endpoint, fn) {
      if (gate) await gate()
      try {
        await hourly?.take(endpoint)
      } catch (error) {
        if (error instanceof HourlyLimitReached) metrics.lineCalls.inc({ endpoint, status: 'held' })
        throw error
      }
      const attempt = () => withTimeout(fn(client), env.LINE_TIMEOUT_MS, `LINE ${endpoint}`)
      try {
        const result = await (pacing ? pacing.run(endpoint, attempt) : attempt())
        metrics.lineCalls.inc({ endpoint, status: '2xx' })
        return result
      } catch (error) {
        // A call the pacing gave up on (Redis away) was held back, never sent.
        const status =
          error instanceof HTTPFetchError
            ? String(error.status)
            : error instanceof TimeoutError
              ? 'timeout'
              : error instanceof PacingUnavailable
                ? 'held'
                : 'network'
        metrics.lineCalls.inc({ endpoint, status })
        throw error
      }
    },
  }
}

/** Sorts a failed LINE call into what the caller should do about it (LINE-API.md §2.4–2.6). */
export function classifyLineError(error: unknown): LineFailure {
  if (error instanceof HourlyLimitReached) {
    return {
      kind: 'rate_limited',
      status: 429,
      message: error.message,
      retryInMs: error.retryInMs,
    }
  }
  if (!(error instanceof HTTPFetchError)) {
    const message = error instanceof Error ? error.message : String(error)
    if (neverConnected(error)) {
      return {
        kind: 'not_sent',
        status: null,
        message: `LINE not reached, nothing sent: ${message}`,
      }
    }
    return { kind: 'transient', status: null, message }
  }
  const body = parseBody(error.body)
  const message = typeof body?.message === 'string' ? body.message : error.statusText
  if (error.status === 409) {
    return {
      kind: 'already_accepted',
      status: 409,
      acceptedRequestId: error.headers.get('x-line-accepted-request-id'),
    }
  }
  if (error.status === 429) {
    if (/monthly limit/i.test(message)) return { kind: 'quota_exceeded', status: 429, message }
    const retryAfterMs = retryAfterOf(error.headers.get('retry-after'))
    return {
      kind: 'rate_limited',
      status: 429,
      message,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    }
  }
  if (error.status === 400 && /invalid reply token/i.test(message)) {
    return { kind: 'invalid_reply_token', status: 400, message }
  }
  if (error.status === 401 || error.status === 403) {
    return { kind: 'channel_refused', status: error.status, message }
  }
  if (error.status >= 500) return { kind: 'transient', status: error.status, message }
  return { kind: 'rejected', status: error.status, message, details: body?.details ?? null }
}

/**
 * Error codes of a call that failed before its connection opened: refused, the host not found
 * or not resolved for now (DNS), or undici's connect timeout. The request is written only once
 * the connection is open, so none of it left. Codes that can also end a connection already open
 * are not among them (ECONNRESET, ETIMEDOUT, EPIPE; EHOSTUNREACH and ENETUNREACH too, which Linux
 * reports on an open connection whose peer became unreachable), nor the call's own timeout,
 * which may come after the request went.
 */
const NOT_CONNECTED: ReadonlySet<string> = new Set([
  LINE_CALL_HELD,
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'UND_ERR_CONNECT_TIMEOUT',
])

/**
 * The error is one of NOT_CONNECTED: the transport's own (undici's request), or the cause of the
 * SDK's `fetch failed`. Node's AggregateError for a host tried at several addresses carries the
 * first one's code.
 */
function neverConnected(error: unknown): boolean {
  const codeOf = (e: unknown) => (e as { code?: unknown } | null)?.code
  const code = codeOf(error) ?? codeOf((error as { cause?: unknown } | null)?.cause)
  return typeof code === 'string' && NOT_CONNECTED.has(code)
}

/** An HTTP date as servers must send it (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/

/**
 * A Retry-After header in ms from now: delta-seconds or an IMF-fixdate (RFC 9110 §10.2.3), else
 * undefined. Checked before Date.parse, which takes "-5", "1.5" or "May 2" as (past) dates.
 */
export function retryAfterOf(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined
  const text = value.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  if (!IMF_FIXDATE.test(text)) return undefined
  const at = Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(at - now, 0)
}

function parseBody(text: string): { message?: unknown; details?: unknown } | null {
  try {
    const parsed: unknown = JSON.parse(text)
    return parsed && typeof parsed === 'object' ? parsed : null
  } catch {
    return null
  }
}
