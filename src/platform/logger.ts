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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'kizuna' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  )
}

/** A stable, non-reversible reference to a LINE user id for logs. */
export function hashUserId(lineUserId: string): string {
  return createHash('sha256').update(`kizuna:${lineUserId}`).digest('hex').slice(0, 16)
}
