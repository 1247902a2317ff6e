import { createHash } from 'node:crypto'
import { type Logger, pino } from 'pino'

export type { Logger }

/**
 * Names of fields that may carry personal data: LINE's and the codebase's own (a LINE user id is
 * `userId` at LINE, `lineUid`/`line_uid` here, a push's `to`), and the columns that hold one.
 */
const PERSONAL = [
  'displayName',
  'email',
  'customer_email',
  'pending_email',
  'phone',
  'name',
  'text',
  'userId',
  'lineUserId',
  'lineUid',
  'line_uid',
  'to',
  'pictureUrl',
  'statusMessage',
]

/**
 * Those fields are never written, whatever a caller passes: at the top, one level down (a row,
 * a profile) and two (`users[0].email`, `a.b.name`, a push's `messages[0].text`). pino compiles
 * the paths once; each wildcard is a walk over the logged object's keys at every call, which
 * logging (not hot) can afford at these depths.
 */
const REDACT = [
  ...PERSONAL.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]),
  'req.headers.authorization',
  'req.headers["x-line-signature"]',
]

/**
 * What a database error may say in a log. Postgres quotes the offending data in `detail`
 * ("Key (email)=(…) already exists"), `where` (the JSON text it could not parse), `hint` and
 * `internalQuery`; these fields are dropped. The message names the problem, not the row.
 */
const DATABASE_ERROR_FIELDS = new Set([
  'type',
  'message',
  'stack',
  'code',
  'severity',
  'schema',
  'table',
  'column',
  'dataType',
  'constraint',
  'routine',
  'file',
  'line',
  'aggregateErrors',
])

/** A Postgres (pg or PGlite) error: a SQLSTATE code and a severity. */
function isDatabaseError(err: Record<string, unknown>): boolean {
  return (
    typeof err.code === 'string' &&
    /^[0-9A-Z]{5}$/.test(err.code) &&
    typeof err.severity === 'string'
  )
}

/** The prototype of pino's serialised errors: only these fresh copies are ever changed. */
const SERIALIZED_ERROR = Object.getPrototypeOf(pino.stdSerializers.err(new Error('probe')))
const isSerializedError = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === SERIALIZED_ERROR

/**
 * Makes a serialised error fit for a log, here and in the errors inside (an aggregate's): drops a
 * database error's unsafe fields, blanks the `quoted` data in messages and stacks, and drops a
 * `name` that only repeats `type` (to the redaction `name` is a personal field).
 */
function scrubError(err: Record<string, unknown>, quoted: string[]): void {
  const database = isDatabaseError(err)
  if (err.name === err.type) delete err.name
  for (const [key, value] of Object.entries(err)) {
    if (database && !DATABASE_ERROR_FIELDS.has(key)) {
      delete err[key]
      continue
    }
    if ((key === 'message' || key === 'stack') && typeof value === 'string') {
      err[key] = quoted.reduce((text, q) => text.replaceAll(q, '"[redacted]"'), value)
    }
    for (const inner of Array.isArray(value) ? value : [value]) {
      if (isSerializedError(inner)) scrubError(inner, quoted)
    }
  }
}

/** pino's error serialiser, without what a database error quotes from the data. */
function serializeError(err: Error): unknown {
  const serialized = pino.stdSerializers.err(err)
  if (isSerializedError(serialized)) scrubError(serialized, quotedData(err))
  return serialized
}

/**
 * The values Postgres data errors (22xxx) in `err` (it, its causes, an aggregate's errors) quote
 * in their messages: `invalid input syntax for type uuid: "taro@x.com"`, `value "0901234567" is
 * out of range for type integer`; each the span from its first quote to its last, quotes
 * included. The message is also in its stack, and in the message and stack of every error it
 * caused (pino joins them).
 */
function quotedData(err: unknown, depth = 0): string[] {
  if (typeof err !== 'object' || err === null || depth > 5) return []
  const { code, message, cause } = err as { code?: unknown; message?: unknown; cause?: unknown }
  const own =
    typeof code === 'string' && DATA_EXCEPTION.test(code) && typeof message === 'string'
      ? (message.match(/"[\s\S]*"/) ?? [])
      : []
  const inner = err instanceof AggregateError ? err.errors : []
  return [...own, ...[cause, ...inner].flatMap((e) => quotedData(e, depth + 1))]
}

/** SQLSTATE class 22, data exception: a value that does not fit its type. */
const DATA_EXCEPTION = /^22[0-9A-Z]{3}$/

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'kizuna' },
      redact: { paths: REDACT, censor: '[redacted]' },
      serializers: { err: serializeError },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  )
}

/** A stable, non-reversible reference to a LINE user id for logs. */
export function hashUserId(lineUserId: string): string {
  return createHash('sha256').update(`kizuna:${lineUserId}`).digest('hex').slice(0, 16)
}
