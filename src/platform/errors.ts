import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { TimeoutError } from './timeout.ts'

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
 * Errors that mean "Postgres (or Redis) is not there", as opposed to "this row is bad": refused
 * or lost connections, a pool or call that timed out, Postgres shutting down or out of
 * connections.
 */
export function isConnectionError(error: unknown): boolean {
  if (error instanceof TimeoutError) return true
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string') {
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE'].includes(code))
      return true
    if (/^(08|57P|53)/.test(code)) return true // connection exception, shutdown, resources
  }
  const message = error instanceof Error ? error.message : ''
  return /connect|terminat|timeout|Connection/i.test(message)
}
