import { randomUUID } from 'node:crypto'
import type { Context, ErrorHandler, MiddlewareHandler, NotFoundHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { ZodError } from 'zod'
import {
  AppError,
  describeFields,
  type ErrorCode,
  type FieldProblem,
  isUnavailableError,
  statusOf,
} from './errors.ts'
import { zodFields } from './input.ts'
import type { Logger } from './logger.ts'
import type { Metrics } from './metrics.ts'
import { isOutageError } from './outage.ts'

export type AppEnv = { Variables: { requestId: string; log: Logger } }

export function requestContext(
  log: Logger,
  metrics: Pick<Metrics, 'httpRequests'>,
): MiddlewareHandler<AppEnv>[] {
  return [
    requestId,
    async (c, next) => {
      const started = performance.now()
      c.set(
        'log',
        lazyChild(log, () => ({ requestId: c.get('requestId') })),
      )
      await next()
      const ms = performance.now() - started
      // The route template, never the concrete path: paths can carry ids.
      const route = c.req.routePath
      const { method } = c.req
      const status = c.res.status
      metrics.httpRequests.observe({ route, method, status: String(status) }, ms / 1000)
      if (!log.isLevelEnabled('debug')) return
      c.get('log').debug({ method, route, status, ms: Math.round(ms * 10) / 10 }, 'request')
    },
  ]
}

/**
 * A new id for every request, in its log lines, its error body and `X-Request-Id`. Hono's
 * requestId() took the client's `X-Request-Id` when it sent one: anyone could choose the id of
 * their requests in the logs and error bodies, or give many the id of another.
 */
const requestId: MiddlewareHandler<AppEnv> = async (c, next) => {
  const id = randomUUID()
  c.set('requestId', id)
  c.header('X-Request-Id', id)
  await next()
}

/**
 * `log.child(bindings())`, made when first used: most requests log nothing, and a pino child
 * per request was ~3% of a busy webhook process's CPU.
 */
function lazyChild(log: Logger, bindings: () => Record<string, unknown>): Logger {
  let child: Logger | undefined
  const target = () => {
    child ??= log.child(bindings())
    return child
  }
  return new Proxy(log, {
    get(_log, prop) {
      const real = target()
      const value = Reflect.get(real, prop, real)
      return typeof value === 'function' ? value.bind(real) : value
    },
    // Anything set (say, `level`) goes to the request's logger, never to the process's.
    set(_log, prop, value) {
      return Reflect.set(target(), prop, value)
    },
  })
}

export function errorBody(c: Context<AppEnv>, code: ErrorCode, message: string, details?: unknown) {
  const error: Record<string, unknown> = { code, message, requestId: c.get('requestId') }
  if (details !== undefined) error.details = details
  return { error }
}

/**
 * Answers every error in the one shape. A 5xx is logged with its cause (the webhook's 503s while
 * Postgres was away used to leave no line at all); one an outage caused is not, as the outage
 * was logged once already. A database that cannot be reached is a 503 saying so (a register
 * may try again in a moment), not an "internal error".
 */
export const onError: ErrorHandler<AppEnv> = (err, c) => {
  // What an outage caused was logged once, as the outage.
  const logged = isOutageError(err)
  if (err instanceof AppError) {
    if (err.status >= 500 && !logged) c.get('log').error({ err }, err.message)
    return c.json(errorBody(c, err.code, err.message, err.details), err.status)
  }
  if (err instanceof HTTPException && err.status < 500) {
    const code = err.status === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST'
    return c.json(errorBody(c, code, err.message || 'bad request'), statusOf(code))
  }
  if (isUnavailableError(err)) {
    if (!logged) c.get('log').error({ err }, UNREACHABLE)
    return c.json(errorBody(c, 'UNAVAILABLE', UNREACHABLE), 503)
  }
  c.get('log').error({ err }, 'unhandled error')
  return c.json(errorBody(c, 'INTERNAL', 'internal error'), 500)
}

const UNREACHABLE =
  'Kizuna cannot reach a service it needs (its database, queue or LINE) right now; try again in a moment'

export const notFound: NotFoundHandler<AppEnv> = (c) =>
  c.json(errorBody(c, 'NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`), 404)

/** Turns a zod error into `field: problem` lines naming every bad field. */
export function describeZodError(error: ZodError): { message: string; fields: FieldProblem[] } {
  const fields = zodFields(error)
  return { message: describeFields(fields), fields }
}
