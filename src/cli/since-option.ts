import { z } from 'zod'
import { UsageError } from './with-db.ts'

/**
 * `--since`: a real calendar date (the start of that day in the store's time zone) or a date-time
 * with its offset. `new Date()` took anything it could read: `12` (2001-12-01), `2026-02-30`
 * (March 2nd), a date-time without offset in the machine's zone.
 */
const sinceSchema = z.union([z.iso.date(), z.iso.datetime({ offset: true })])

const USE =
  'use a date (2026-11-23: that day from 00:00 in TZ_STORE) or a date-time with offset (2026-11-23T04:15:00+09:00)'

/** Checks `--since` before anything opens a database. */
export function checkSinceOption(text: string): void {
  if (!sinceSchema.safeParse(text).success) {
    throw new UsageError(`--since: not a date: ${JSON.stringify(text)}; ${USE}`)
  }
}

/**
 * The instant `--since` names; a time after `now` (a typo, or 2099) is refused. `now` is the
 * database's clock when the window is (refresh-spend's: purchases age by now() in SQL), so that
 * an app clock off the database's neither refuses a past time nor takes a future one.
 */
export function readSinceOption(text: string, timeZone: string, now: Date): Date {
  checkSinceOption(text)
  const at = text.length === 10 ? startOfDayIn(text, timeZone) : new Date(text)
  if (at > now) {
    throw new UsageError(`--since: ${text} is in the future; give the time to start from`)
  }
  return at
}

/** When a calendar day (YYYY-MM-DD) starts in a time zone: Asia/Tokyo's 2026-11-23 is 2026-11-22T15:00Z. */
function startOfDayIn(day: string, timeZone: string): Date {
  const midnightUtc = Date.parse(`${day}T00:00:00Z`)
  // The zone's offset at the guess, then again at the result (a DST change within the offset).
  const first = midnightUtc - offsetMs(midnightUtc, timeZone)
  return new Date(midnightUtc - offsetMs(first, timeZone))
}

/** The zone's offset from UTC at an instant, in ms (GMT+09:00 → 9 h). */
function offsetMs(at: number, timeZone: string): number {
  const name = new Intl.DateTimeFormat('en', { timeZone, timeZoneName: 'longOffset' })
    .formatToParts(at)
    .find((p) => p.type === 'timeZoneName')?.value
  const m = /^GMT([+-])(\d{2}):(\d{2})$/.exec(name ?? '')
  if (!m) return 0 // 'GMT': UTC itself
  const sign = m[1] === '-' ? -1 : 1
  return sign * (Number(m[2]) * 60 + Number(m[3])) * 60_000
}
