import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { HttpBindings } from '@hono/node-server'
import type { Context, MiddlewareHandler } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { OperationMatch } from './openapi-validator.ts'
import { noteRetryKeyAttempt, rejectRetryKeyWithOtherBody } from './outbox.ts'
import {
  type FailureScript,
  type HoldScript,
  notifyPage,
  type RecordedRequest,
  type SandboxContext,
} from './state.ts'

export type SandboxEnv = {
  Bindings: Partial<HttpBindings>
  Variables: {
    requestId: string
    match: OperationMatch | undefined
    /** The validated JSON body (for operations that take one). */
    body: unknown
    rawBody: Uint8Array
  }
}

const DATA_HOST = 'https://api-data.line.me'
const MAX_BODY_BYTES = 2 * 1024 * 1024

export const AUTH_FAILED =
  'Authentication failed. Confirm that the access token in the authorization header is valid.'
export const RATE_LIMITED = 'The API rate limit has been exceeded. Try again later.'

/**
 * Runs before every route, in LINE's order of concerns: record → hold (holdNext) → scripted
 * failure → auth → rate limit → header and body validation. Every response gets an `x-line-request-id`.
 */
export function requestPipeline(
  ctx: SandboxContext,
  host: 'api' | 'data',
): MiddlewareHandler<SandboxEnv> {
  return async function linePlatformPipeline(c, next) {
    const requestId = randomUUID()
    // Set before the response exists: added to a finished response, it would make Hono's
    // lightweight response build a full web Response (a third of a push's CPU here).
    c.header('x-line-request-id', requestId)
    const url = new URL(c.req.url)
    const found = ctx.validator.findOperation(c.req.method, url.pathname)
    const onThisHost = found && found.op.servers.includes(DATA_HOST) === (host === 'data')
    const match = onThisHost ? found : undefined
    const raw = new Uint8Array(await c.req.arrayBuffer())
    // A JSON body is parsed once, for the recorded request and the validation alike.
    const contentType = c.req.header('content-type')
    const json = contentType && /json/i.test(contentType) ? parseJson(raw) : null
    c.set('requestId', requestId)
    c.set('match', match)
    c.set('rawBody', raw)
    const entry: RecordedRequest = {
      at: ctx.now(),
      host,
      method: c.req.method,
      path: url.pathname,
      template: match?.op.template,
      query: url.search,
      headers: recordedHeaders(c),
      body: recordedBody(raw, json),
      status: 0,
      requestId,
      scripted: false,
    }
    ctx.state.requests.push(entry)

    const hold = takeScript(ctx.state.holds, entry)
    if (hold) {
      hold.arrived()
      await untilReleased(hold.released, ctx.closing.signal)
    }
    const script = takeScript(ctx.state.failures, entry)
    if (script) {
      entry.scripted = true
      if (script.carriedOut) {
        const early = checkRequest(ctx, c, match, raw, json)
        if (!early) await next()
      }
      const res = await scriptedResponse(ctx, c, script)
      if (!res) {
        noteRetryKeyAttempt(ctx, c.req.header('x-line-retry-key'), entry.at, 0, raw)
        if (script.carriedOut) changed(ctx, entry)
        return new Response(null) // connection already dropped
      }
      c.res = res
    } else {
      const early = checkRequest(ctx, c, match, raw, json)
      if (early) c.res = early
      else await next()
    }
    entry.status = c.res.status
    noteRetryKeyAttempt(ctx, c.req.header('x-line-retry-key'), entry.at, entry.status, raw)
    changed(ctx, entry)
    return c.res
  }
}

/**
 * A request that may have changed what the sandbox page shows (a rich menu linked, unlinked or
 * made the default, a menu deleted…) wakes its live streams; reads change nothing.
 */
function changed(ctx: SandboxContext, entry: RecordedRequest): void {
  if (entry.method !== 'GET' && entry.method !== 'HEAD') notifyPage(ctx)
}

/**
 * A held request waits for its release or the platform's close (at once when it is closing
 * already), and leaves no listener on `closing` once released.
 */
function untilReleased(released: Promise<void>, closing: AbortSignal): Promise<void> {
  if (closing.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const onClose = () => resolve()
    closing.addEventListener('abort', onClose, { once: true })
    void released.then(() => {
      closing.removeEventListener('abort', onClose)
      resolve()
    })
  })
}

function checkRequest(
  ctx: SandboxContext,
  c: Context<SandboxEnv>,
  match: OperationMatch | undefined,
  raw: Uint8Array,
  json: ParsedJson | null,
): Response | undefined {
  if (c.req.header('authorization') !== `Bearer ${ctx.channelAccessToken}`) {
    return c.json({ message: AUTH_FAILED }, 401)
  }
  if (!match) return undefined // unknown endpoint: the router answers 404
  const { op } = match
  if (!ctx.limiter.take(`${op.method.toUpperCase()} ${op.template}`)) {
    return c.json({ message: RATE_LIMITED }, 429)
  }
  for (const name of ctx.validator.knownHeaders) {
    const value = c.req.header(name)
    const param = op.headers.get(name)
    if (value !== undefined && !param) {
      return c.json(
        { message: `The ${headerLabel(name)} header is not supported by this API` },
        400,
      )
    }
  }
  for (const [name, param] of op.headers) {
    const value = c.req.header(name)
    const details =
      value === undefined
        ? param.required
          ? [{ message: 'must be specified', property: param.name }]
          : []
        : ctx.validator.validateHeader(param, value)
    if (details.length > 0) return c.json({ message: `Invalid ${param.name} header`, details }, 400)
  }
  if (op.headers.has('x-line-retry-key')) {
    const otherBody = rejectRetryKeyWithOtherBody(ctx, c, raw)
    if (otherBody) return otherBody
  }
  if (!op.jsonBody) return undefined
  if (raw.byteLength > MAX_BODY_BYTES) return c.json({ message: 'Request Entity Too Large' }, 413)
  // LINE reads a JSON body only as such (LINE-API.md §2.6: 415 unsupported media type).
  if (!/^application\/json\s*(;|$)/i.test(c.req.header('content-type') ?? '')) {
    return c.json({ message: 'Unsupported Media Type' }, 415)
  }
  const parsed = json ?? parseJson(raw)
  if (!parsed.ok) return c.json({ message: 'The request body could not be parsed as JSON' }, 400)
  const body = parsed.value
  const details = ctx.validator.validateBody(op, body)
  if (details.length > 0) {
    return c.json({ message: `The request body has ${details.length} error(s)`, details }, 400)
  }
  c.set('body', body)
  return undefined
}

/** The first script `entry` matches, counted as used once (removed when used up). */
function takeScript<S extends FailureScript | HoldScript>(
  scripts: S[],
  entry: RecordedRequest,
): S | undefined {
  const script = scripts.find(
    (s) =>
      (!s.method || s.method.toUpperCase() === entry.method) &&
      matchesPath(s.path, entry.path, entry.template) &&
      (!('match' in s) || !s.match || s.match(entry)),
  )
  if (!script) return undefined
  script.remaining -= 1
  if (script.remaining <= 0) scripts.splice(scripts.indexOf(script), 1)
  return script
}

export function matchesPath(
  pattern: string | RegExp,
  path: string,
  template: string | undefined,
): boolean {
  return typeof pattern === 'string' ? pattern === path || pattern === template : pattern.test(path)
}

async function scriptedResponse(
  ctx: SandboxContext,
  c: Context<SandboxEnv>,
  script: FailureScript,
): Promise<Response | undefined> {
  if (script.timeoutMs) {
    await sleep(script.timeoutMs, undefined, { signal: ctx.closing.signal }).catch(() => {})
    if (script.status === undefined) {
      c.env?.incoming?.socket.destroy()
      if (c.env?.incoming) return undefined
    }
  }
  const status = (script.status ?? 500) as ContentfulStatusCode
  const body = script.body ?? { message: defaultMessage(status) }
  return c.json(body as object, status, script.headers)
}

function defaultMessage(status: number): string {
  if (status === 429) return RATE_LIMITED
  if (status === 401) return AUTH_FAILED
  if (status >= 500) return 'Internal server error'
  return 'Scripted failure'
}

/** The body parsed as JSON, or its text when it does not parse. */
type ParsedJson = { ok: true; value: unknown } | { ok: false; text: string }

const utf8 = new TextDecoder()

function parseJson(raw: Uint8Array): ParsedJson {
  const text = utf8.decode(raw)
  try {
    return { ok: true, value: JSON.parse(text) }
  } catch {
    return { ok: false, text }
  }
}

/** What a test reads back: the JSON body, the text of one that did not parse, else its size. */
function recordedBody(raw: Uint8Array, json: ParsedJson | null): unknown {
  if (raw.byteLength === 0) return undefined
  if (!json) return raw.byteLength
  return json.ok ? json.value : json.text
}

function headerLabel(lower: string): string {
  return lower.replace(/(^|-)([a-z])/g, (_, dash: string, ch: string) => dash + ch.toUpperCase())
}

/**
 * The request's headers, lower-cased. Read from Node's message when there is one: building the
 * web Request's Headers just to record them cost more than validating the body.
 */
function recordedHeaders(c: Context<SandboxEnv>): Record<string, string> {
  const incoming = c.env?.incoming
  if (!incoming) {
    return Object.fromEntries(
      [...c.req.raw.headers.entries()].map(([k, v]) => [k.toLowerCase(), v]),
    )
  }
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(incoming.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return headers
}
