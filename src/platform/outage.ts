import type { Logger } from './logger.ts'

/**
 * A service (Postgres, Redis) being away, logged once when it goes and once when it is back.
 * Without it each request, job and connection logged every failure of its own: thousands of
 * lines in a minute of outage (15,000 job failures in six seconds with a backlog), none saying
 * which service was away.
 */
export type Outage = {
  readonly down: boolean
  /** The service could not be reached: the first failure of an outage is logged. */
  failed(err: unknown): void
  /** The service answered: the end of an outage is logged. */
  answered(): void
}

export function createOutage(
  log: Logger,
  service: { name: string; envVar: string; url: string; meanwhile: string },
): Outage {
  const at = `${service.envVar} (${redactUrl(service.url)})`
  let downSince: number | null = null
  return {
    get down() {
      return downSince !== null
    },
    failed(err) {
      if (downSince !== null) return
      downSince = Date.now()
      log.error({ err }, `${service.name} is unreachable at ${at}: ${service.meanwhile}; retrying`)
    },
    answered() {
      if (downSince === null) return
      const seconds = Math.round((Date.now() - downSince) / 1000)
      downSince = null
      log.info({ seconds }, `${service.name} is reachable again at ${at}`)
    },
  }
}

const outageErrors = new WeakSet<object>()

/** Marks an error as one an outage caused (and logged): see isOutageError. */
export function markOutageError(err: unknown): void {
  if (typeof err === 'object' && err !== null) outageErrors.add(err)
}

/**
 * Whether this error, or one it was caused by, is a failure an outage already logged: the
 * request or job it failed logs nothing more.
 */
export function isOutageError(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 5) return false
  if (outageErrors.has(err)) return true
  // A job's several events that all failed for it.
  if (err instanceof AggregateError && err.errors.length > 0) {
    return err.errors.every((e) => isOutageError(e, depth + 1))
  }
  return isOutageError((err as { cause?: unknown }).cause, depth + 1)
}

/** A URL as it may appear in a log: its password, if any, replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(unparseable)'
  }
}

/** `text` (an error's message) as it may appear in a log: `url`'s password, if any, replaced by `***`. */
export function redactPassword(text: string, url: string): string {
  let password = ''
  try {
    password = decodeURIComponent(new URL(url).password)
  } catch {}
  return password ? text.replaceAll(password, '***') : text
}
