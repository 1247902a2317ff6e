import type { ContentfulStatusCode } from 'hono/utils/http-status'

const STATUS = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  GONE: 410,
  PAYLOAD_TOO_LARGE: 413,
  UNPROCESSABLE: 422,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const satisfies Record<string, ContentfulStatusCode>

export type ErrorCode = keyof typeof STATUS

export class AppError extends Error {
  override name = 'AppError'
  readonly code: ErrorCode
  readonly details: unknown

  constructor(code: ErrorCode, message: string, opts?: { cause?: unknown; details?: unknown }) {
    super(message, { cause: opts?.cause })
    this.code = code
    this.details = opts?.details
  }

  get status(): ContentfulStatusCode {
    return STATUS[this.code]
  }
}

export function statusOf(code: ErrorCode): ContentfulStatusCode {
  return STATUS[code]
}

/** One bad field: its path (`lines.0.name`, `(body)` for the whole) and what is wrong. */
export type FieldProblem = { field: string; message: string }

/** `field: problem; field: problem`. */
export function describeFields(fields: FieldProblem[]): string {
  return fields.map((f) => `${f.field}: ${f.message}`).join('; ')
}

/**
 * The one shape of a refused input: the message names every field with its problem
 * (`field: problem; …`), and `details` lists them. A 400 unless another code is given (a 413 of
 * a body too large, a 422 of a misread barcode).
 */
export function fieldsError(fields: FieldProblem[], code: ErrorCode = 'BAD_REQUEST'): AppError {
  return new AppError(code, describeFields(fields), { details: fields })
}

/** fieldsError for one field: `field: problem`. */
export function invalidField(field: string, message: string, code?: ErrorCode): AppError {
  return fieldsError([{ field, message }], code)
}

/**
 * Postgres aborted the transaction whole because it and another each waited for a lock the other
 * held (40P01, a deadlock) or because it could not be ordered with another (40001, a
 * serialization failure): nothing it did stayed, and it may be run again (runAgainIfAborted).
 */
export function isAbortedTransaction(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === '40P01' || code === '40001'
}

/**
 * Postgres gave up on a statement: a statement timeout or a cancel (57014) or a lock timeout
 * (55P03). As with a deadlock, the transaction is aborted and nothing of it stayed; Postgres is
 * there and can write, so this is no outage, and the same work may well succeed when run again
 * (the imports do: isRunAgainError).
 */
export function isTimedOutStatement(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === '57014' || code === '55P03'
}

/**
 * Postgres aborted the transaction (isAbortedTransaction: a deadlock) or gave up on a statement
 * (isTimedOutStatement: a timeout): nothing of it stayed, and the imports run it again
 * (runAgainIfAborted's `again`).
 */
export function isRunAgainError(error: unknown): boolean {
  return isAbortedTransaction(error) || isTimedOutStatement(error)
}

/** Node's codes of a connection refused, reset, timed out or not found (DNS). */
export const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
])

/**
 * SQLSTATEs of Postgres not there or unable to write: a connection exception (08), the server
 * shutting down, crashed, starting or the connection ended (57P), out of resources (53: disk
 * full, too many connections), a session ended for idling in a transaction (25P03), and a write
 * on a read-only server (25006: the primary failed over and this connection is on a standby, or
 * the database was set read-only).
 */
const OUTAGE_SQLSTATE = /^(08|57P|53|25P03$|25006$)/

/**
 * A Postgres error (one with a SQLSTATE) saying Postgres is not there or cannot write (see
 * OUTAGE_SQLSTATE), as a query answered it: an outage, though connecting succeeds.
 */
export function isPostgresOutage(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && SQLSTATE.test(code) && OUTAGE_SQLSTATE.test(code)
}

/**
 * Postgres refused a write while it answers reads: read-only (25006, a standby after a
 * failover) or its disk full (53100). Only a write that succeeds shows it can write again.
 */
export function isRefusedWrite(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === '25006' || code === '53100'
}

/**
 * Redis's replies on a replica (after a failover, a connection left on the old primary): a write
 * refused, and a blocking wait ended as the primary became a replica.
 */
const REDIS_REPLICA = /^READONLY |^UNBLOCKED .*instance state changed/

/** A Postgres error code: five digits or capitals (Node's own, EPIPE, are told apart first). */
const SQLSTATE = /^[0-9A-Z]{5}$/

/**
 * Errors that mean "Postgres (or Redis) is not there, or cannot write", as opposed to "this row
 * is bad": refused or lost connections, a pool or call that timed out, Postgres shutting down,
 * out of connections or read-only. Told by what the error is, never by a word its message
 * happens to hold (a bug's "Cannot read properties of undefined (reading 'connection')", a LINE
 * answer quoting "timeout" were 503s, and could start a Redis outage): a Postgres error (one with
 * a SQLSTATE) by its code, as its message may name a connection (a trigger's, a constraint's) and
 * mean none; a socket's by Node's code (NETWORK_CODES); a call given up on by its class
 * (TimeoutError, withTimeout's or AbortSignal.timeout's); Redis's replies on a replica by their
 * code; and the clients' own errors, which carry no code, by their exact words (CONNECTION_LOST).
 */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  if (error.name === 'TimeoutError' || error.name === 'MaxRetriesPerRequestError') return true
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code)) return true
    if (SQLSTATE.test(code)) return OUTAGE_SQLSTATE.test(code)
  }
  const { message } = error
  return (
    CONNECTION_LOST.has(message) ||
    message.startsWith(SOCKET_TIMEOUT) ||
    REDIS_REPLICA.test(message)
  )
}

/**
 * What node-postgres, pg-pool and ioredis say, with no code, when a connection could not be made
 * or was lost, or a command had no answer in time. "Client was closed and is not queryable" is
 * not among them: that client was closed by Kizuna (PreparingClient, a stale statement).
 */
const CONNECTION_LOST: ReadonlySet<string> = new Set([
  // node-postgres: the connection ended (by the server, the network, or end()), or had failed.
  'Connection terminated unexpectedly',
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'timeout expired',
  'Query read timeout',
  // pg-pool: a new connection not made in time, or no connection free in time (isPoolBusy).
  'Connection terminated due to connection timeout',
  'timeout exceeded when trying to connect',
  // ioredis: not connected (with or without its offline queue), lost, or no answer in time.
  'Connection is closed.',
  "Stream isn't writeable and enableOfflineQueue options is false",
  'Command aborted due to connection close',
  'Command timed out',
])

/** ioredis's socketTimeout: a connection that sent nothing while a command waited. */
const SOCKET_TIMEOUT = 'Socket timeout. Expecting data'

/**
 * A query waited longer than the pool's connectionTimeoutMillis for a connection while the pool
 * had none free (pg-pool's own words, only there): other work held them all (a worker runs ~80
 * transactions at once on a pool of 20). Nothing the query did wrong, and not Postgres being away
 * either: the work is retried, but is not to count as Postgres unreachable.
 */
export function isPoolBusy(error: unknown): boolean {
  return error instanceof Error && error.message === 'timeout exceeded when trying to connect'
}

/**
 * Nothing the request or job did wrong: Postgres or Redis is away or cannot write
 * (isConnectionError), or Postgres gave up on a statement (isTimedOutStatement: a timeout, busy
 * rows). A request is answered 503 ("try again in a moment"); a job's events wait for a retry.
 */
export function isUnavailableError(error: unknown): boolean {
  return isConnectionError(error) || isTimedOutStatement(error)
}
