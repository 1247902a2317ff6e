import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import {
  decimalNumber,
  httpUrl,
  lineBaseUrl,
  mailFrom,
  quietHours,
  tierThresholds,
  timeZone,
  urlOf,
  wholeNumber,
} from './env-values.ts'

/**
 * The Kizuna folder. `npm start` runs there (npm runs scripts in the package folder), so a
 * relative DATA_DIR is read from there by every command: `npx kizuna` run in a subfolder used to
 * create and fill an empty database of its own.
 */
const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

export const envSchema = z.object({
  PORT: wholeNumber(3000, 0, 65535).default(3000),
  ROLE: z.enum(['all', 'web', 'worker']).default('all'),
  DATABASE_URL: urlOf(
    /^postgres(ql)?$/,
    'a postgres:// or postgresql:// URL, e.g. postgres://user:password@host:5432/database',
  )
    // `postgres:/x` parses, and node-postgres then logs in to localhost as nobody.
    .refine((url) => new URL(url).hostname !== '' || new URL(url).searchParams.has('host'), {
      error:
        'name the server: postgres://user:password@host:5432/database (or ?host=/socket/folder)',
    })
    .optional(),
  DATA_DIR: z
    .string()
    .min(1)
    .default('.data')
    .transform((dir) => resolve(projectRoot, dir)),
  REDIS_URL: urlOf(/^rediss?$/, 'a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379').default(
    'redis://127.0.0.1:6379',
  ),
  // Each Kizuna sharing one Redis needs its own: BullMQ keys are `<prefix>:<queue>:…`, and two
  // instances on one prefix take each other's jobs and schedules. No ':' (it would split keys).
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'use letters, digits, - and _ only')
    .default('kizuna'),
  // The app answers at the root of its address: its pages post and redirect to /u/…, /link/…,
  // /staff/…, which a path here (a proxy's sub-path) would escape.
  PUBLIC_BASE_URL: httpUrl()
    .refine((url) => new URL(url).pathname === '/' && !/[?#]/.test(url), {
      error:
        'use scheme, host and port only: Kizuna answers at the root of its address, so give it a host of its own (e.g. https://crm.shop.example), not a path',
    })
    .optional(),
  // Bearer token GET /metrics wants; unset, /metrics answers only requests straight from loopback.
  // Printable ASCII: a header carries nothing else, and a space would end the token.
  METRICS_TOKEN: z
    .string()
    .min(16, 'use at least 16 characters, e.g. from `openssl rand -hex 32`')
    .regex(/^[\x21-\x7e]+$/, 'use printable ASCII without spaces, e.g. from `openssl rand -hex 32`')
    .optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  TZ_STORE: timeZone.default('Asia/Tokyo'),
  LINE_CHANNEL_SECRET: z.string().min(1).optional(),
  LINE_CHANNEL_ACCESS_TOKEN: z.string().min(1).optional(),
  LINE_API_BASE_URL: lineBaseUrl('https://api.line.me'),
  LINE_DATA_API_BASE_URL: lineBaseUrl('https://api-data.line.me'),
  LINE_PUSH_RATE_PER_SECOND: wholeNumber(2000, 1, 100_000).default(2000),
  // At most 5 minutes, half the delivery lease: one call is a small part of a claim (the wait for
  // its send slot is not; a row taken over after the lease goes again under its retry key: see
  // SendWindow). Node would also run a timer past 2^31-1 ms after 1 ms, timing every call out.
  LINE_TIMEOUT_MS: wholeNumber(10_000, 1, 300_000, 'use at most 300000 (5 minutes)').default(
    10_000,
  ),
  LINE_CALLS_UNDER_WAY: wholeNumber(200, 1, 1000).default(200),
  // A delivery LINE answers a rate-limit 429 this many times is parked (failed, for
  // `kizuna deliveries retry`): a person LINE keeps refusing must not be tried for ever.
  LINE_RATE_LIMIT_TRIES: wholeNumber(10, 1, 50).default(10),
  SMTP_URL: urlOf(
    /^smtps?$/,
    'an smtp:// or smtps:// URL, e.g. smtp://user:password@mail.example.jp:587',
  ).optional(),
  // `addr@domain.tld` or `Name <addr@domain.tld>`. The default is the sandbox mailbox's sender
  // only: with SMTP_URL it must be set (see crossFieldProblems).
  MAIL_FROM: mailFrom.default('Kizuna <no-reply@kizuna.local>'),
  /** Account link through the shop's own login (with LINK_ASSERTION_SECRET); else email codes. */
  LINK_LOGIN_URL: httpUrl().optional(),
  LINK_ASSERTION_SECRET: z.string().min(32, 'use at least 32 characters').optional(),
  // At most 30 days: a follow-up is about the purchase. (Postgres adds it as a 32-bit integer,
  // so a huge value failed every receipt scanned.)
  POST_PURCHASE_DELAY_SECONDS: wholeNumber(
    3600,
    0,
    2_592_000,
    'use at most 2592000 (30 days)',
  ).default(3600),
  QUIET_HOURS: quietHours.default('21:00-09:00'),
  MARKETING_WEEKLY_CAP: wholeNumber(3, 0, 100, 'use at most 100, or 0 for no cap').default(3),
  MEMBER_CARD_PREFIX: z
    .string()
    .regex(/^\d{2,3}$/, 'use 2 or 3 digits')
    .default('29'),
  // Points are counted in hundredths of a percent (pointsFor), and so is the rate in SQL when
  // waiting orders attach: a finer rate would earn them differently.
  POINTS_RATE_PERCENT: decimalNumber('use a number of percent, e.g. 1 or 1.25', 100, {
    most: 2,
    error: 'use at most two decimals, e.g. 1.25',
  }).default(1),
  TIER_THRESHOLDS: tierThresholds.default([
    { tier: 'silver', minSpend: 50_000 },
    { tier: 'gold', minSpend: 200_000 },
  ]),
  // Each webhook job in flight holds a database connection while it runs: past a few hundred
  // they only wait for one (the pool has 20).
  WORKER_CONCURRENCY: wholeNumber(16, 1, 256).default(16),
  // More than an hour leaves work Redis lost waiting that long.
  SWEEP_INTERVAL_MS: wholeNumber(
    30_000,
    1000,
    3_600_000,
    'use 1000 to 3600000 (1 s to an hour)',
  ).default(30_000),
  // Processed webhook events (LINE's payloads: user ids, message texts) are deleted this many
  // days after they arrived; 0 keeps them.
  WEBHOOK_RETENTION_DAYS: wholeNumber(30, 0, 3650, 'use at most 3650 (ten years)').default(30),
})

/**
 * Host names only this machine reaches (a URL's `hostname`). A sandbox run answers only requests
 * naming one, and may have a PUBLIC_BASE_URL naming only one.
 */
export const LOOPBACK_HOSTNAMES: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]'])

type Problem = { variable: string; message: string }

/**
 * Rules across variables, checked on the raw values so they are reported with the rest; a rule
 * on a variable's value is skipped when that value is bad itself (`invalid`): ROLE=foo is one
 * problem, not three.
 */
function crossFieldProblems(
  raw: Record<string, string | undefined>,
  invalid: ReadonlySet<string>,
): Problem[] {
  const problems: Problem[] = []
  const hasSecret = raw.LINE_CHANNEL_SECRET !== undefined
  const hasToken = raw.LINE_CHANNEL_ACCESS_TOKEN !== undefined
  const role = raw.ROLE ?? 'all'
  if (hasSecret !== hasToken) {
    problems.push({
      variable: hasSecret ? 'LINE_CHANNEL_ACCESS_TOKEN' : 'LINE_CHANNEL_SECRET',
      message: 'set both LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN, or neither (sandbox)',
    })
  }
  const publicUrl = raw.PUBLIC_BASE_URL
  if (!hasSecret && !hasToken && publicUrl !== undefined && !invalid.has('PUBLIC_BASE_URL')) {
    // No credentials (or empty ones: a secret the deploy did not inject) means the sandbox,
    // where anyone can act as any LINE user: not under a name shoppers reach.
    const host = new URL(publicUrl).hostname
    if (!LOOPBACK_HOSTNAMES.has(host)) {
      problems.push({
        variable: 'LINE_CHANNEL_SECRET',
        message:
          `PUBLIC_BASE_URL names ${host}, but LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN ` +
          'are unset or empty, so Kizuna would run its built-in LINE sandbox, where anyone can ' +
          'act as any LINE user: set both (check that they reach the process), or for a trial ' +
          'on this machine leave PUBLIC_BASE_URL unset or at http://localhost:PORT',
      })
    }
  }
  const hasLoginUrl = raw.LINK_LOGIN_URL !== undefined
  if (hasLoginUrl !== (raw.LINK_ASSERTION_SECRET !== undefined)) {
    // Half of it would quietly fall back to email codes, or leave the secret unused.
    problems.push({
      variable: hasLoginUrl ? 'LINK_ASSERTION_SECRET' : 'LINK_LOGIN_URL',
      message: 'set both LINK_LOGIN_URL and LINK_ASSERTION_SECRET, or neither (email codes)',
    })
  }
  if (raw.SMTP_URL !== undefined && !invalid.has('SMTP_URL') && raw.PUBLIC_BASE_URL === undefined) {
    // Every email's unsubscribe link (List-Unsubscribe, the footer), open pixel and tracked
    // links are built on it: unset, they named http://localhost:PORT, which no shopper reaches,
    // and an opt-out that does nothing breaks Japan's Specified Electronic Mail Act.
    problems.push({
      variable: 'PUBLIC_BASE_URL',
      message:
        'set PUBLIC_BASE_URL with SMTP_URL: the unsubscribe and tracked links in every email are ' +
        'built on it, and unset they would name http://localhost:PORT, which shoppers cannot reach',
    })
  }
  if (raw.SMTP_URL !== undefined && !invalid.has('SMTP_URL') && raw.MAIL_FROM === undefined) {
    // The default sender went out through the relay unannounced: .local is reserved, so no
    // domain's SPF or DMARC lets it pass, and receiving servers junk or refuse the email.
    problems.push({
      variable: 'MAIL_FROM',
      message:
        "set MAIL_FROM with SMTP_URL: the sender of every email, at the shop's own domain " +
        '(Shop <shop@example.jp>), which the relay may send for; the default, ' +
        'no-reply@kizuna.local, is only for the sandbox mailbox and fails SPF and DMARC',
    })
  }
  if (invalid.has('ROLE')) return problems
  if (role !== 'all' && raw.DATABASE_URL === undefined) {
    problems.push({
      variable: 'ROLE',
      message: 'the embedded database (no DATABASE_URL) runs in one process: use ROLE=all',
    })
  }
  if (role !== 'all' && !hasSecret) {
    problems.push({
      variable: 'ROLE',
      message: 'the LINE sandbox (no LINE credentials) runs in one process: use ROLE=all',
    })
  }
  return problems
}

export type Env = z.infer<typeof envSchema>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** The only reader of process.env: reports every bad variable at once. */
export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  const cleaned = Object.fromEntries(
    Object.entries(source).filter(([, value]) => value !== undefined && value !== ''),
  )
  // QUIET_HOURS may be deliberately empty (= no quiet hours).
  if (source.QUIET_HOURS === '') cleaned.QUIET_HOURS = ''
  // Only spaces is a mistake, not "unset": numbers would read it as 0 (PORT=' ' → any port).
  const blank = Object.keys(envSchema.shape).filter(
    (name) => cleaned[name] !== '' && cleaned[name]?.trim() === '',
  )
  for (const name of blank) delete cleaned[name]
  const result = envSchema.safeParse(cleaned)
  const invalid = new Set(result.error?.issues.map((issue) => String(issue.path[0])))
  const problems = [
    ...blank.map((variable) => ({
      variable,
      message: 'only spaces: set a value, or leave it empty for the default',
    })),
    ...crossFieldProblems(cleaned, invalid),
  ]
  if (!result.success || problems.length > 0) {
    const lines = [
      ...(result.success ? [] : [z.prettifyError(result.error)]),
      ...problems.map((p) => `✖ ${p.message}\n  → at ${p.variable}`),
    ]
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`)
  }
  return result.data
}

/**
 * The start-up warning when emails go out (SMTP_URL) with links on a plain-http PUBLIC_BASE_URL:
 * mail programs offer one-click unsubscribe (RFC 8058) only for an https List-Unsubscribe URL,
 * so shoppers get the footer link alone. Taken, not refused: a local relay and a local address
 * (a test setup) are plain http. Null otherwise.
 */
export function unsubscribeWarning(env: Pick<Env, 'SMTP_URL' | 'PUBLIC_BASE_URL'>): string | null {
  if (!env.SMTP_URL || !env.PUBLIC_BASE_URL?.startsWith('http://')) return null
  return (
    'PUBLIC_BASE_URL is plain http: emails go out (SMTP_URL) with unsubscribe links that mail ' +
    'programs do not offer as one-click unsubscribe (RFC 8058 wants https); set it to the https ' +
    'address shoppers reach'
  )
}

export function isSandbox(env: Env): boolean {
  return env.LINE_CHANNEL_SECRET === undefined
}

/** Where email goes: SMTP_URL; else, on a sandbox run, the sandbox mailbox; else nowhere. */
export type MailKind = 'smtp' | 'sandbox' | 'none'

export function mailKind(env: Pick<Env, 'SMTP_URL'>, opts: { sandbox: boolean }): MailKind {
  if (env.SMTP_URL) return 'smtp'
  return opts.sandbox ? 'sandbox' : 'none'
}
