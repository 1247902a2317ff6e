import type { Consents } from '../consent/consent.service.ts'
import type { Deps } from '../platform/deps.ts'
import type { ClaimedDelivery } from './delivery-claim.repo.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'
import type { RecentMarketing } from './marketing-cap.repo.ts'

const MINUTES_PER_DAY = 24 * 60
const MINUTE_MS = 60_000

/**
 * When a marketing send at `now` must wait for the end of quiet hours (`HH:MM-HH:MM` in the
 * store's time zone; the window may cross midnight), the end of the window: the next moment the
 * store's clock reads its end, or, when the clocks skip that time (a DST change forward), the
 * moment they jump past it. Otherwise null.
 */
export function quietHoursEnd(now: Date, quietHours: string, timeZone: string): Date | null {
  if (!quietHours) return null
  const [start, end] = quietHours.split('-').map(toMinutes) as [number, number]
  if (start === end) return null
  const local = localMinutes(now, timeZone)
  const inside = start < end ? local >= start && local < end : local >= start || local < end
  if (!inside) return null
  const minutesLeft = (end - local + MINUTES_PER_DAY) % MINUTES_PER_DAY
  const msIntoMinute = now.getUTCSeconds() * 1000 + now.getUTCMilliseconds()
  // The end if the clock keeps its offset until then; a DST change on the way moves it by the
  // change (a night an hour shorter or longer).
  const kept = new Date(now.getTime() + minutesLeft * MINUTE_MS - msIntoMinute)
  const after = offsetMinutes(kept, timeZone)
  const shift = after - offsetMinutes(now, timeZone)
  if (shift === 0) return kept
  const moved = new Date(kept.getTime() - shift * MINUTE_MS)
  if (shift < 0 || (moved > now && offsetMinutes(moved, timeZone) === after)) return moved
  // The clocks go forward over the end (02:30 on a night 02:00 becomes 03:00).
  return firstMinuteAtOffset(moved > now ? moved : now, kept, after, timeZone)
}

/** The first whole minute after `from`, up to `to`, at which the zone's offset is `offset`. */
function firstMinuteAtOffset(from: Date, to: Date, offset: number, timeZone: string): Date {
  let before = Math.floor(from.getTime() / MINUTE_MS)
  let at = Math.ceil(to.getTime() / MINUTE_MS)
  while (at - before > 1) {
    const mid = Math.floor((before + at) / 2)
    if (offsetMinutes(new Date(mid * MINUTE_MS), timeZone) === offset) at = mid
    else before = mid
  }
  return new Date(at * MINUTE_MS)
}

function toMinutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number]
  return h * 60 + m
}

const formatters = new Map<string, Intl.DateTimeFormat>()

/** The store's clock at `at`, as milliseconds since the epoch were it UTC (whole seconds). */
function wallClock(at: Date, timeZone: string): number {
  let f = formatters.get(timeZone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    })
    formatters.set(timeZone, f)
  }
  const parts = f.formatToParts(at)
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0)
  return Date.UTC(
    get('year'),
    get('month') - 1,
    get('day'),
    get('hour'),
    get('minute'),
    get('second'),
  )
}

function localMinutes(at: Date, timeZone: string): number {
  const wall = new Date(wallClock(at, timeZone))
  return wall.getUTCHours() * 60 + wall.getUTCMinutes()
}

/** The zone's offset from UTC at `at`, in minutes (New York in winter: -300). */
function offsetMinutes(at: Date, timeZone: string): number {
  const wholeSeconds = Math.floor(at.getTime() / 1000) * 1000
  return Math.round((wallClock(at, timeZone) - wholeSeconds) / MINUTE_MS)
}

export type ChannelChoice =
  | { channel: 'line'; lineUid: string }
  | { channel: 'email'; to: string }
  | { channel: null; reason: string }

/**
 * The channel for one delivery, decided at send time: LINE when the person follows the account
 * and allows the category there (an answer to their own message or tap always may: they just
 * asked, e.g. the confirmation of an opt-out). Email only when LINE cannot reach them (they
 * blocked the account or never added it: DESIGN.md flows 2 and 3), if there is an address,
 * consent for the category by email and an email version. A friend who turned the category off
 * on LINE was told they will no longer get it there, not that it moves to their inbox: skipped
 * (`no_<category>_consent_line`). Otherwise none, with every reason why.
 */
export function chooseChannel(
  d: Pick<
    ClaimedDelivery,
    'category' | 'line_uid' | 'line_friend' | 'email' | 'erased' | 'answers_person'
  >,
  consents: Consents,
  email: { hasVersion: boolean; configured: boolean },
): ChannelChoice {
  if (d.erased) return { channel: null, reason: 'erased' }
  const allows = consents[d.category]
  if (d.line_uid && d.line_friend) {
    if (allows.line || d.answers_person) return { channel: 'line', lineUid: d.line_uid }
    return { channel: null, reason: `no_${d.category}_consent_line` }
  }
  const why: string[] = [!d.line_uid ? 'not_a_friend' : 'line_blocked']
  if (!email.hasVersion) why.push('no_email_version')
  else if (!d.email) why.push('no_email')
  else if (!allows.email) why.push(`no_${d.category}_consent_email`)
  else if (!email.configured) why.push('email_not_configured')
  else return { channel: 'email', to: d.email }
  return { channel: null, reason: why.join(',') }
}

const WEEK_MS = 7 * 24 * 60 * 60 * 1000

/**
 * How long a delivery waits when the cap has room for it only if other jobs' sends under way
 * (RecentMarketing's `underWay`) send nothing: a LINE send is stored before its call within
 * moments of its claim, an email marked as it takes its send slot (up to half the lease).
 */
const UNDER_WAY_RECHECK_MS = 5_000

/**
 * Quiet hours defer every marketing delivery to the window's end. Transactional deliveries pass
 * untouched. Returns the deliveries that may go now.
 */
export function deferQuietHours(
  deps: Pick<Deps, 'env'>,
  rows: ClaimedDelivery[],
  now: Date,
  outcomes: DeliveryOutcome[],
): ClaimedDelivery[] {
  if (!rows.some((r) => r.category === 'marketing')) return rows
  const quietUntil = quietHoursEnd(now, deps.env.QUIET_HOURS, deps.env.TZ_STORE)
  if (!quietUntil) return rows
  return rows.filter((row) => {
    if (row.category !== 'marketing') return true
    outcomes.push({ id: row.id, status: 'pending', sendAfter: quietUntil })
    return false
  })
}

/**
 * The weekly cap over a claim's deliveries once each one's send is decided (`goes`: a request or an
 * email goes out now). Room is taken only by what may reach the person: first the claim's sends
 * settled before (`unknown`: a reply the worker stopped during, failed as of unknown outcome, which
 * the cap's count finds from now on) and the requests that may already have reached LINE within the
 * week (reachedWithinWeek; one under a key young enough goes again whatever the cap says,
 * mayHaveReachedLine), then each new send that goes, in the claim's order. A delivery that sends
 * nothing (skipped, failed before any call, left for a retry) takes none, as the cap's count after
 * this attempt would not find it either. Over the cap a new send waits until the cap-th most recent
 * counted send, of the week before or of this claim, turns a week old, or is skipped if its sender
 * said so. One with room only if other jobs' sends under way send nothing (`underWay`) is neither
 * sent nor skipped: it is decided again shortly (UNDER_WAY_RECHECK_MS), once they went or did
 * not. Returns the ids held back, their outcomes added to `outcomes`.
 */
export function applyWeeklyCap(
  deps: Pick<Deps, 'env'>,
  decided: { row: ClaimedDelivery; goes: boolean }[],
  recent: RecentMarketing,
  now: Date,
  outcomes: DeliveryOutcome[],
  unknown: ClaimedDelivery[] = [],
): Set<string> {
  const held = new Set<string>()
  const cap = deps.env.MARKETING_WEEKLY_CAP
  const marketing = decided.filter((d) => d.row.category === 'marketing')
  if (cap === 0 || marketing.length === 0) return held
  // When each send of this claim counted so far reached the person, per customer.
  const addedNow = new Map<string, Date[]>()
  const count = (row: ClaimedDelivery, at: Date) => {
    const added = addedNow.get(row.customer_id)
    if (added) added.push(at)
    else addedNow.set(row.customer_id, [at])
  }
  for (const row of unknown) if (row.category === 'marketing') count(row, now)
  for (const { row } of marketing) {
    if (reachedWithinWeek(row, now)) count(row, row.line_first_call_at!)
  }
  for (const { row, goes } of marketing) {
    if (!goes || mayHaveReachedLine(row)) continue
    const before = recent.get(row.customer_id) ?? { latest: [], underWay: 0 }
    const added = addedNow.get(row.customer_id) ?? []
    // `latest` holds every counted send of the week, or the cap's most recent: its length
    // stands for their number below the cap.
    const counted = before.latest.length + added.length
    if (counted + before.underWay < cap) {
      count(row, now)
      continue
    }
    held.add(row.id)
    if (counted < cap) {
      // Room unless other jobs' sends under way go: decided again once they are.
      const sendAfter = new Date(now.getTime() + UNDER_WAY_RECHECK_MS)
      outcomes.push({ id: row.id, status: 'pending', sendAfter })
      continue
    }
    if (row.over_cap === 'skip') {
      outcomes.push({ id: row.id, status: 'skipped', reason: 'weekly_cap' })
    } else {
      outcomes.push({
        id: row.id,
        status: 'pending',
        sendAfter: roomOpensAt(before, added, cap, now),
      })
    }
  }
  return held
}

/**
 * When a customer at or over the cap has room again: when the cap-th most recent of their counted
 * sends (those of the week before the claim, newest first, and the claim's own) turns a week old.
 */
function roomOpensAt(before: { latest: Date[] }, added: Date[], cap: number, now: Date): Date {
  const times = [...before.latest, ...added].map((d) => d.getTime()).sort((a, b) => b - a)
  return new Date((times[cap - 1] ?? now.getTime()) + WEEK_MS)
}

/**
 * A request under the delivery's key may have reached the person within the week, counted from
 * its first call as the cap's count does (claimDeliveriesWithMarketingCounts): whether it goes
 * again now (mayHaveReachedLine) or not (its key too old, the person gone from LINE).
 */
function reachedWithinWeek(row: ClaimedDelivery, now: Date): boolean {
  const first = row.line_first_call_at?.getTime()
  return row.line_key_used && first !== undefined && first > now.getTime() - WEEK_MS
}

/**
 * An earlier attempt's push or multicast got no answer (a 5xx or timeout): LINE may have taken
 * it. Its retry repeats that request under its key, which LINE honours for 24 hours only
 * (LINE-API.md §2.4), so it is not held back by the cap (up to a week): it was within the cap
 * when it first went, and it counts for the person's other sends while it waits (see
 * claimDeliveriesWithMarketingCounts); sent after the key expired it could arrive twice (a
 * multicast chunk, to everyone in it). Quiet hours still apply: a window is shorter than the
 * key's life, and a retry they hold past it is failed when it comes up again (KEY_EXPIRED).
 * One past its key's life is failed, not sent (it counts only as what may have arrived, see
 * reachedWithinWeek). A request LINE refused (a 400; a 429 to the first request under its key)
 * took nothing: its first call is forgotten (line_key_used is false) and it waits for room like
 * a new send.
 */
function mayHaveReachedLine(row: ClaimedDelivery): boolean {
  return row.line_key_used && !row.line_key_expired
}
