import { createHash } from 'node:crypto'
import { type Logger, pino } from 'pino'

export type { Logger }

/** Fields that may carry personal data are never written, whatever a caller passes. */
const REDACT = [
  'displayName',
  'email',
  'phone',
  'name',
  'text',
  'userId',
  'lineUserId',
  'pictureUrl',
  'statusMessage',
  '*.displayName',
  '*.email',
  '*.phone',
  '*.userId',
  '*.lineUserId',
  '*.text',
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

/** Drops the unsafe fields of database errors, here and in the errors inside (an aggregate's). */
function scrubDatabaseErrors(err: Record<string, unknown>): void {
  const database = isDatabaseError(err)
  for (const [key, value] of Object.entries(err)) {
    if (database && !DATABASE_ERROR_FIELDS.has(key)) {
      delete err[key]
      continue
    }
    for (const inner of Array.isArray(value) ? value : [value]) {
      if (isSerializedError(inner)) scrubDatabaseErrors(inner)
    }
  }
}

/** pino's error serialiser, without what a database error quotes from the data. */
function serializeError(err: Error): unknown {
  const serialized = pino.stdSerializers.err(err)
  if (isSerializedError(serialized)) scrubDatabaseErrors(serialized)
  return serialized
}

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
