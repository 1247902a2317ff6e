import { z } from 'zod'

/** The value schemas of src/config/env.ts's variables (env.ts is the one reader of process.env). */

export const quietHours = z
  .string()
  .regex(
    /^$|^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/,
    'use HH:MM-HH:MM, or empty for none',
  )

export const timeZone = z.string().refine((tz) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz })
    return true
  } catch {
    return false
  }
}, 'unknown IANA time zone')

/** A URL of these schemes; anything else (not a URL, or another scheme) is told what to use. */
export const urlOf = (protocol: RegExp, use: string) => z.url({ protocol, error: `use ${use}` })

/** Links in messages and LINE's hosts: a `javascript:` or `ftp:` URL is a mistake, never intended. */
export const httpUrl = () => urlOf(/^https?$/, 'an http(s) URL')

/** The LINE SDK keeps only scheme, host and port of a base URL: a path would silently vanish. */
export const lineBaseUrl = (fallback: string) =>
  httpUrl()
    .refine((url) => new URL(url).pathname === '/' && !/[?#]/.test(url), {
      error: 'use scheme, host and port only: the LINE SDK drops base-URL paths and queries',
    })
    .default(fallback)

/**
 * A whole number written in digits, from `min` to `max`: z.coerce.number read PORT=0x50 as 80 and
 * took 1e3, 3000.0 and -0. `tooBig`: what to say above `max`.
 */
export const wholeNumber = (
  example: number,
  min: number,
  max: number,
  tooBig = `use at most ${max}`,
) =>
  z
    .string()
    .regex(/^\d+$/, `use a whole number, e.g. ${example}`)
    .transform(Number)
    .pipe(z.number().min(min, `use at least ${min}`).max(max, tooBig))

/**
 * A number written in digits, with decimals or not (no 1e3, 0x50 or sign), up to `max`, with at
 * most `decimals` decimals (trailing zeros aside), checked on the digits as written: a number
 * read first is already rounded in binary. `use`: what to write instead.
 */
export const decimalNumber = (
  use: string,
  max: number,
  decimals: { most: number; error: string },
) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?$/, { error: use, abort: true })
    .regex(new RegExp(`^\\d+(\\.\\d{1,${decimals.most}}0*)?$`), decimals.error)
    .transform(Number)
    .pipe(z.number().max(max, `use at most ${max}`))

/** The member card shows the tier (flex-templates/member-card.json: `tier` maxLength 40). */
const TIER_NAME_MAX = 40

/** The tier of everyone below the first threshold (and of customers without purchases). */
const BELOW_ALL_TIERS = 'regular'

/** What TIER_THRESHOLDS cannot mean, or null. */
function tierProblem(tiers: { tier: string; minSpend: number }[]): string | null {
  const names = new Set<string>()
  const amounts = new Set<number>()
  for (const { tier, minSpend } of tiers) {
    if (tier === BELOW_ALL_TIERS) {
      // As the top tier, every customer without purchases would be shown the vip menu.
      return `"${BELOW_ALL_TIERS}" is the tier below every threshold: name the tiers above it`
    }
    if (names.has(tier)) return `tier "${tier}" is named twice`
    // One of the two could never be reached.
    if (amounts.has(minSpend)) return `two tiers start at ${minSpend} yen`
    names.add(tier)
    amounts.add(minSpend)
  }
  return null
}

/** `silver:50000,gold:200000` → tiers by 12-month spend in yen, ascending; below all: `regular`. */
export const tierThresholds = z
  .string()
  .regex(
    /^[a-z][a-z0-9_-]*:\d+(,[a-z][a-z0-9_-]*:\d+)*$/,
    'use tier:yen,tier:yen, e.g. silver:50000',
  )
  // A longer name would fail every member card of that tier at send time.
  .refine((value) => value.split(',').every((pair) => pair.indexOf(':') <= TIER_NAME_MAX), {
    error: `use tier names of at most ${TIER_NAME_MAX} characters (the member card shows the tier)`,
  })
  .transform((value) =>
    value
      .split(',')
      .map((pair) => {
        const [tier = '', yen = '0'] = pair.split(':')
        return { tier, minSpend: Number(yen) }
      })
      .sort((a, b) => a.minSpend - b.minSpend),
  )
  .superRefine((tiers, ctx) => {
    const problem = tierProblem(tiers)
    if (problem) ctx.addIssue({ code: 'custom', message: problem })
  })

/** A sender: `addr@domain.tld`, or a display name (no `<`, `>` or line break) and `<addr@…>`. */
const MAIL_FROM_PATTERN =
  /^(?:[^<>\r\n]*<[^\s<>@]+@[^\s<>@]+\.[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+\.[^\s<>@]+)$/

/**
 * MAIL_FROM: anything else fails every email at send time instead. A domain without a dot
 * (`shop@localhost`) is refused too: relays and receiving servers refuse such a sender, and it
 * would name the emails' Message-IDs (deliveryMessageId).
 */
export const mailFrom = z.string().superRefine((value, ctx) => {
  if (MAIL_FROM_PATTERN.test(value)) return
  const bareHost = /^[^@]*@[^\s<>@.]+>?$/.test(value)
  ctx.addIssue({
    code: 'custom',
    message: bareHost
      ? 'use a domain with a dot after the @, e.g. shop@example.jp (mail servers refuse a sender at a bare host name such as localhost)'
      : 'use an address, or a name and an address: Shop <shop@example.jp>',
  })
})
