import type { Consents } from '../consent/consent.service.ts'
import type { ClaimedDelivery } from './delivery.repo.ts'

const MINUTES_PER_DAY = 24 * 60

/**
 * When a marketing send at `now` must wait for the end of quiet hours (`HH:MM-HH:MM` in the
 * store's time zone; the window may cross midnight), the end of the window; otherwise null.
 * Minutes are counted on the local clock, so a DST change inside the window shifts the end by
 * the change (Japan has no DST).
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
  return new Date(now.getTime() + minutesLeft * 60_000 - msIntoMinute)
}

function toMinutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number]
  return h * 60 + m
}

const formatters = new Map<string, Intl.DateTimeFormat>()
function localMinutes(at: Date, timeZone: string): number {
  let f = formatters.get(timeZone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
    formatters.set(timeZone, f)
  }
  const parts = f.formatToParts(at)
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0)
  return get('hour') * 60 + get('minute')
}

export type ChannelChoice =
  | { channel: 'line'; lineUid: string }
  | { channel: 'email'; to: string }
  | { channel: null; reason: string }

/**
 * The channel for one delivery, decided at send time: LINE when the person follows the account
 * and allows the category there (an answer to their own message or tap always may: they just
 * asked, e.g. the confirmation of an opt-out); otherwise email when there is an address, consent
 * for the category by email and an email version; otherwise none, with every reason why.
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
  if (d.line_uid && d.line_friend && (allows.line || d.answers_person)) {
    return { channel: 'line', lineUid: d.line_uid }
  }
  const why: string[] = [
    !d.line_uid
      ? 'not_a_friend'
      : !d.line_friend
        ? 'line_blocked'
        : `no_${d.category}_consent_line`,
  ]
  if (!email.hasVersion) why.push('no_email_version')
  else if (!d.email) why.push('no_email')
  else if (!allows.email) why.push(`no_${d.category}_consent_email`)
  else if (!email.configured) why.push('email_not_configured')
  else return { channel: 'email', to: d.email }
  return { channel: null, reason: why.join(',') }
}
