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
