import { HTTPFetchError, type messagingApi } from '@line/bot-sdk'
import { Agent, request } from 'undici'
import type { Env } from '../config/env.ts'
import type { Metrics } from './metrics.ts'

type SendBodies = {
  push: messagingApi.PushMessageRequest
  multicast: messagingApi.MulticastRequest
  reply: messagingApi.ReplyMessageRequest
}

export type LineSendEndpoint = keyof SendBodies

/** A request body serialised ahead (before waiting for the rate limiter, not after). */
export type PreparedBody<E extends LineSendEndpoint> = {
  readonly json: string
  readonly endpoint: E
}

/** A body serialised before (a multicast chunk's stored request, repeated on a retry). */
export function preparedBody<E extends LineSendEndpoint>(
  endpoint: E,
  json: string,
): PreparedBody<E> {
  return { json, endpoint }
}

/**
 * A request body around messages serialised before (`JSON.stringify(messages)`): the delivery
 * engine keeps a batch's messages as strings while they wait for the limiter, not as object
 * trees (kept that long, the trees were promoted and collected as old objects).
 */
export function prepareBody<E extends LineSendEndpoint>(
  endpoint: E,
  fields: Omit<SendBodies[E], 'messages'>,
  messagesJson: string,
): PreparedBody<E> {
  const head = JSON.stringify(fields)
  const json =
    head === '{}'
      ? `{"messages":${messagesJson}}`
      : `${head.slice(0, -1)},"messages":${messagesJson}}`
  return { json, endpoint }
}

/** The sending calls, on the hot path of every delivery. */
export type LineSendTransport = {
  /**
   * POSTs one message request with its retry key (push and multicast; never reply: LINE answers
   * a retry key there with 400). Resolves with LINE's `x-line-request-id`; a non-2xx answer
   * rejects with the SDK's HTTPFetchError (status, headers, body), as the SDK would.
   */
  send(
    body: PreparedBody<LineSendEndpoint>,
    retryKey?: string,
  ): Promise<{ requestId: string | null }>
  close(): Promise<void>
}

const PATHS: Record<LineSendEndpoint, string> = {
  push: '/v2/bot/message/push',
  multicast: '/v2/bot/message/multicast',
  reply: '/v2/bot/message/reply',
}

/**
 * The three sending endpoints over undici's request API and one keep-alive pool, instead of the
 * SDK's global fetch: measured here, a push through the SDK's fetch costs about 150 µs of CPU
 * against 30 µs this way, and at LINE's 2,000 pushes a second that is most of a core. Same
 * requests as the SDK (bodies typed by its models, its error class); every other
 * LINE call still goes through the SDK. The timeout aborts the request.
 */
export function createLineSendTransport(
  env: Pick<
    Env,
    'LINE_CHANNEL_ACCESS_TOKEN' | 'LINE_API_BASE_URL' | 'LINE_TIMEOUT_MS' | 'LINE_CALLS_UNDER_WAY'
  >,
  metrics: Metrics,
): LineSendTransport {
  const origin = new URL(env.LINE_API_BASE_URL).origin
  const dispatcher = new Agent({
    // A connection for every call the three endpoints' limiters may have under way (opened as
    // they are needed), so a call never waits for one after its slot.
    connections: 3 * env.LINE_CALLS_UNDER_WAY,
    keepAliveTimeout: 30_000,
    headersTimeout: env.LINE_TIMEOUT_MS,
    bodyTimeout: env.LINE_TIMEOUT_MS,
  })
  const headers = {
    authorization: `Bearer ${env.LINE_CHANNEL_ACCESS_TOKEN}`,
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
  }
  return {
    async send({ endpoint, json }, retryKey) {
      let status = 'network'
      try {
        const res = await request(origin + PATHS[endpoint], {
          method: 'POST',
          dispatcher,
          headers: retryKey ? { ...headers, 'x-line-retry-key': retryKey } : headers,
          body: json,
          signal: AbortSignal.timeout(env.LINE_TIMEOUT_MS),
        })
        const text = await res.body.text()
        status = res.statusCode < 300 ? '2xx' : String(res.statusCode)
        if (res.statusCode >= 300) {
          throw new HTTPFetchError(`${res.statusCode} - ${text}`, {
            status: res.statusCode,
            statusText: '',
            headers: toHeaders(res.headers),
            body: text,
          })
        }
        // undici lower-cases header names; a web Headers object is built only for errors.
        const requestId = res.headers['x-line-request-id']
        return { requestId: typeof requestId === 'string' ? requestId : null }
      } catch (error) {
        if (error instanceof Error && error.name === 'TimeoutError') status = 'timeout'
        throw error
      } finally {
        metrics.lineCalls.inc({ endpoint, status })
      }
    },
    close: () => dispatcher.close(),
  }
}

const USER_AGENT = 'Kizuna (undici)'

function toHeaders(raw: Record<string, string | string[] | undefined>): Headers {
  const headers = new Headers()
  for (const [name, value] of Object.entries(raw)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v)
    else if (value !== undefined) headers.set(name, value)
  }
  return headers
}
