import { describe, expect, it } from 'vitest'
import { ConfigError, isSandbox, loadEnv, unsubscribeWarning } from '../../src/config/env.ts'
import { renderLineMessage } from '../../src/flex/message-template.ts'

/** A sender, which SMTP_URL wants beside it. */
const MAIL_FROM = 'Shop <shop@example.jp>'
/** LINE credentials, which a public PUBLIC_BASE_URL wants beside it (no sandbox there). */
const LINE = { LINE_CHANNEL_SECRET: 's', LINE_CHANNEL_ACCESS_TOKEN: 't' }

describe('loadEnv', () => {
  it('runs with no variables at all: embedded database, sandbox LINE, documented defaults', () => {
    const env = loadEnv({})
    expect(env.PORT).toBe(3000)
    expect(env.ROLE).toBe('all')
    expect(env.DATABASE_URL).toBeUndefined()
    expect(env.REDIS_URL).toBe('redis://127.0.0.1:6379')
    expect(env.TZ_STORE).toBe('Asia/Tokyo')
    expect(env.LINE_PUSH_RATE_PER_SECOND).toBe(2000)
    expect(env.QUIET_HOURS).toBe('21:00-09:00')
    expect(env.MARKETING_WEEKLY_CAP).toBe(3)
    expect(env.POST_PURCHASE_DELAY_SECONDS).toBe(3600)
    expect(isSandbox(env)).toBe(true)
  })

  it('reports every bad variable at once, by name', () => {
    let message = ''
    try {
      loadEnv({
        PORT: 'eighty',
        REDIS_URL: 'http://x',
        TZ_STORE: 'Mars/Olympus',
        QUIET_HOURS: '9pm-9am',
        LINE_CHANNEL_SECRET: 'only-the-secret',
        POINTS_RATE_PERCENT: '0.125',
      })
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError)
      message = (error as Error).message
    }
    for (const name of [
      'PORT',
      'REDIS_URL',
      'TZ_STORE',
      'QUIET_HOURS',
      'LINE_CHANNEL_ACCESS_TOKEN',
      'POINTS_RATE_PERCENT',
    ]) {
      expect(message).toContain(name)
    }
  })

  it('says what a bad value should be, once per variable, and still every variable at once', () => {
    let message = ''
    try {
      loadEnv({
        PORT: 'abc',
        REDIS_URL: 'http://x',
        DATABASE_URL: 'mysql://x',
        SMTP_URL: 'http://x',
        ROLE: 'foo',
      })
    } catch (error) {
      message = (error as Error).message
    }
    const problems = message.split('\n✖ ').slice(1)
    expect(problems.sort()).toEqual(
      [
        // Not "expected number, received NaN".
        'use a whole number, e.g. 3000\n  → at PORT',
        // Not only "Invalid URL".
        'use a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379\n  → at REDIS_URL',
        'use a postgres:// or postgresql:// URL, e.g. postgres://user:password@host:5432/database\n  → at DATABASE_URL',
        'use an smtp:// or smtps:// URL, e.g. smtp://user:password@mail.example.jp:587\n  → at SMTP_URL',
        // Once: the split-role rules are not checked on a role that is none.
        'Invalid option: expected one of "all"|"web"|"worker"\n  → at ROLE',
      ].sort(),
    )
  })

  it('accepts an empty QUIET_HOURS as "no quiet hours"', () => {
    expect(loadEnv({ QUIET_HOURS: '' }).QUIET_HOURS).toBe('')
  })

  it('takes a QUEUE_PREFIX of letters, digits, - and _, never one with ":"', () => {
    expect(loadEnv({}).QUEUE_PREFIX).toBe('kizuna')
    expect(loadEnv({ QUEUE_PREFIX: 'shop-2_b' }).QUEUE_PREFIX).toBe('shop-2_b')
    expect(() => loadEnv({ QUEUE_PREFIX: 'shop:2' })).toThrow(/QUEUE_PREFIX/)
    expect(() => loadEnv({ QUEUE_PREFIX: 'shop 2' })).toThrow(/QUEUE_PREFIX/)
  })

  it('wants LINK_LOGIN_URL and LINK_ASSERTION_SECRET together, naming both', () => {
    const secret = 'x'.repeat(32)
    for (const half of [
      { LINK_LOGIN_URL: 'https://shop.example/login' },
      { LINK_ASSERTION_SECRET: secret },
    ]) {
      expect(() => loadEnv(half)).toThrow(/LINK_LOGIN_URL and LINK_ASSERTION_SECRET/)
    }
    const both = loadEnv({
      LINK_LOGIN_URL: 'https://shop.example/login',
      LINK_ASSERTION_SECRET: secret,
    })
    expect(both.LINK_LOGIN_URL).toBe('https://shop.example/login')
  })

  it('wants PUBLIC_BASE_URL with SMTP_URL, naming both', () => {
    // Every email's unsubscribe link (List-Unsubscribe, the footer) and tracked links are built
    // on PUBLIC_BASE_URL: unset, they named http://localhost:PORT, which no shopper reaches.
    for (const others of [{}, { LINE_CHANNEL_SECRET: 's', LINE_CHANNEL_ACCESS_TOKEN: 't' }]) {
      let message = ''
      try {
        loadEnv({ SMTP_URL: 'smtp://mail.example.jp:587', MAIL_FROM, ...others })
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError)
        message = (error as Error).message
      }
      expect(message).toMatch(/SMTP_URL[\s\S]*\n {2}→ at PUBLIC_BASE_URL$/)
    }
    // http is taken (a local relay and a local address); start-up warns (unsubscribeWarning).
    const env = loadEnv({
      SMTP_URL: 'smtp://127.0.0.1:2525',
      MAIL_FROM,
      PUBLIC_BASE_URL: 'http://localhost:3000',
    })
    expect(env.PUBLIC_BASE_URL).toBe('http://localhost:3000')
    // A bad SMTP_URL is one problem, not two.
    expect(() => loadEnv({ SMTP_URL: 'http://x' })).toThrow(
      /^Invalid configuration:\n✖ use an smtp:\/\/[^\n]*\n {2}→ at SMTP_URL$/,
    )
  })

  it('warns at start-up when one-click unsubscribe would be offered over plain http', () => {
    const warning = unsubscribeWarning(
      loadEnv({
        SMTP_URL: 'smtp://127.0.0.1:2525',
        MAIL_FROM,
        PUBLIC_BASE_URL: 'http://localhost:3000',
      }),
    )
    expect(warning).toMatch(
      /^PUBLIC_BASE_URL is plain http: .*one-click unsubscribe \(RFC 8058 wants https\)/,
    )
    const https = {
      SMTP_URL: 'smtp://mail.example.jp',
      MAIL_FROM,
      PUBLIC_BASE_URL: 'https://crm.shop.example',
      ...LINE,
    }
    expect(unsubscribeWarning(loadEnv(https))).toBeNull()
    // No email sent, no unsubscribe link.
    expect(unsubscribeWarning(loadEnv({ PUBLIC_BASE_URL: 'http://localhost:3000' }))).toBeNull()
  })

  it('takes only http(s) URLs for links and LINE hosts', () => {
    for (const name of [
      'PUBLIC_BASE_URL',
      'LINK_LOGIN_URL',
      'LINE_API_BASE_URL',
      'LINE_DATA_API_BASE_URL',
    ]) {
      for (const bad of ['javascript://x/%0aalert(1)', 'ftp://shop.example/']) {
        expect(() => loadEnv({ [name]: bad }), `${name}=${bad}`).toThrow(new RegExp(`at ${name}`))
      }
    }
    expect(loadEnv({ PUBLIC_BASE_URL: 'http://shop.example', ...LINE }).PUBLIC_BASE_URL).toBe(
      'http://shop.example',
    )
  })

  it('refuses a path, query or fragment on a LINE base URL, which the SDK would drop', () => {
    for (const name of ['LINE_API_BASE_URL', 'LINE_DATA_API_BASE_URL']) {
      for (const bad of [
        'https://proxy.example/line',
        'https://proxy.example/?k=1',
        'https://proxy.example/#x',
      ]) {
        expect(() => loadEnv({ [name]: bad }), `${name}=${bad}`).toThrow(/drops base-URL paths/)
      }
      expect(loadEnv({ [name]: 'http://127.0.0.1:8080/' })[name as 'LINE_API_BASE_URL']).toBe(
        'http://127.0.0.1:8080/',
      )
    }
  })

  it('refuses a PUBLIC_BASE_URL with a path, query or fragment, which the pages would escape', () => {
    // Kizuna answers at the root of its address: its pages post to /u/…, /link/…, /staff/….
    for (const bad of [
      'https://shop.example/kizuna',
      'https://shop.example/kizuna/',
      'https://shop.example/?a=1',
      'https://shop.example/#x',
      'https://shop.example?',
    ]) {
      expect(() => loadEnv({ PUBLIC_BASE_URL: bad }), bad).toThrow(
        /host of its own[\s\S]*→ at PUBLIC_BASE_URL/,
      )
    }
    for (const good of ['https://crm.shop.example', 'https://crm.shop.example/', 'http://h:8080']) {
      expect(loadEnv({ PUBLIC_BASE_URL: good, ...LINE }).PUBLIC_BASE_URL).toBe(good)
    }
  })

  it('refuses a PORT (or any variable) of only spaces instead of reading 0', () => {
    expect(() => loadEnv({ PORT: ' ' })).toThrow(/only spaces[\s\S]*→ at PORT/)
    expect(() => loadEnv({ REDIS_URL: '  ' })).toThrow(/→ at REDIS_URL/)
    expect(loadEnv({ PORT: '' }).PORT).toBe(3000)
  })

  it('refuses a LINE timeout or follow-up delay too long to mean anything, instead of breaking on it', () => {
    // Node runs a timer over 2^31-1 ms after 1 ms: every LINE call would time out at once.
    expect(() => loadEnv({ LINE_TIMEOUT_MS: '3000000000' })).toThrow(/→ at LINE_TIMEOUT_MS/)
    // Postgres counts the delay in a 32-bit integer: every receipt scanned would be a 500.
    expect(() => loadEnv({ POST_PURCHASE_DELAY_SECONDS: '2147483648' })).toThrow(
      /→ at POST_PURCHASE_DELAY_SECONDS/,
    )
    expect(loadEnv({ LINE_TIMEOUT_MS: '300000' }).LINE_TIMEOUT_MS).toBe(300_000)
    expect(loadEnv({ POST_PURCHASE_DELAY_SECONDS: '2592000' }).POST_PURCHASE_DELAY_SECONDS).toBe(
      2_592_000,
    )
  })

  it('takes a METRICS_TOKEN of 16 or more characters without spaces, naming it otherwise', () => {
    expect(loadEnv({}).METRICS_TOKEN).toBeUndefined()
    const token = 'a'.repeat(16)
    expect(loadEnv({ METRICS_TOKEN: token }).METRICS_TOKEN).toBe(token)
    expect(() => loadEnv({ METRICS_TOKEN: 'short' })).toThrow(
      /at least 16 characters[\s\S]*→ at METRICS_TOKEN/,
    )
    for (const bad of ['sixteen chars ok', `${token}\t`, `${token}é`]) {
      expect(() => loadEnv({ METRICS_TOKEN: bad }), bad).toThrow(/spaces[\s\S]*→ at METRICS_TOKEN/)
    }
  })

  it('takes tier names the member card can show (40 characters), naming TIER_THRESHOLDS otherwise', () => {
    const longest = `platinum_${'x'.repeat(31)}`
    const env = loadEnv({ TIER_THRESHOLDS: `silver:50000,${longest}:200000` })
    expect(env.TIER_THRESHOLDS.at(-1)?.tier).toBe(longest)
    // Every card of that tier renders (the template takes a tier of at most 40 characters).
    const card = renderLineMessage('member-card', {
      displayName: 'Member',
      cardNumber: '2900000000018',
      tier: longest,
      points: '0 pt',
      greeting: '',
    })
    expect(JSON.stringify(card)).toContain(longest)
    expect(() => loadEnv({ TIER_THRESHOLDS: `silver:50000,${longest}x:200000` })).toThrow(
      /40 characters[\s\S]*→ at TIER_THRESHOLDS/,
    )
  })

  it('takes whole numbers written in digits only: not hex, an exponent, a decimal point or a sign', () => {
    // z.coerce.number listened on port 80 for PORT=0x50.
    for (const bad of ['0x50', '1e3', '3000.0', '-0', '+80', '8_0', 'Infinity']) {
      expect(() => loadEnv({ PORT: bad }), bad).toThrow(
        /use a whole number, e\.g\. 3000\n\s+→ at PORT/,
      )
    }
    const integers = [
      'PORT',
      'LINE_PUSH_RATE_PER_SECOND',
      'LINE_TIMEOUT_MS',
      'LINE_CALLS_UNDER_WAY',
      'LINE_RATE_LIMIT_TRIES',
      'POST_PURCHASE_DELAY_SECONDS',
      'MARKETING_WEEKLY_CAP',
      'WORKER_CONCURRENCY',
      'SWEEP_INTERVAL_MS',
      'WEBHOOK_RETENTION_DAYS',
    ]
    for (const name of integers) {
      expect(() => loadEnv({ [name]: '1e1' }), name).toThrow(
        new RegExp(`whole number.*\\n\\s+→ at ${name}`),
      )
    }
    expect(() => loadEnv({ POINTS_RATE_PERCENT: '0x1' })).toThrow(/→ at POINTS_RATE_PERCENT/)
    expect(loadEnv({ POINTS_RATE_PERCENT: '1.25' }).POINTS_RATE_PERCENT).toBe(1.25)
    // Points are counted in hundredths of a percent, at the register and when an order attaches:
    // a rate finer than that (once taken when within a millionth of one) earned 1 point of 100
    // yen at one and 0 at the other.
    for (const rate of ['0.9999999999', '1.0000001', '0.125']) {
      expect(() => loadEnv({ POINTS_RATE_PERCENT: rate }), rate).toThrow(
        /use at most two decimals, e\.g\. 1\.25\n\s+→ at POINTS_RATE_PERCENT/,
      )
    }
    expect(loadEnv({ POINTS_RATE_PERCENT: '0.70' }).POINTS_RATE_PERCENT).toBe(0.7)
    expect(loadEnv({ PORT: '8080', WORKER_CONCURRENCY: '32' })).toMatchObject({
      PORT: 8080,
      WORKER_CONCURRENCY: 32,
    })
  })

  it('bounds counts and durations that mean nothing past a point, instead of breaking on them', () => {
    const tooBig: [string, string, RegExp][] = [
      // The nightly prune computed an invalid date.
      ['WEBHOOK_RETENTION_DAYS', '200000000', /use at most 3650 \(ten years\)/],
      ['WORKER_CONCURRENCY', '257', /use at most 256/],
      ['MARKETING_WEEKLY_CAP', '101', /use at most 100, or 0 for no cap/],
      ['SWEEP_INTERVAL_MS', '3600001', /use 1000 to 3600000 \(1 s to an hour\)/],
      ['SWEEP_INTERVAL_MS', '999', /use at least 1000/],
    ]
    for (const [name, value, message] of tooBig) {
      expect(() => loadEnv({ [name]: value }), `${name}=${value}`).toThrow(
        new RegExp(`${message.source}\\n\\s+→ at ${name}`),
      )
    }
    expect(
      loadEnv({
        WEBHOOK_RETENTION_DAYS: '3650',
        WORKER_CONCURRENCY: '256',
        MARKETING_WEEKLY_CAP: '100',
        SWEEP_INTERVAL_MS: '3600000',
      }),
    ).toMatchObject({
      WEBHOOK_RETENTION_DAYS: 3650,
      WORKER_CONCURRENCY: 256,
      MARKETING_WEEKLY_CAP: 100,
      SWEEP_INTERVAL_MS: 3_600_000,
    })
  })

  it('refuses TIER_THRESHOLDS naming a tier twice, two tiers at one amount, or "regular"', () => {
    expect(() => loadEnv({ TIER_THRESHOLDS: 'gold:1,gold:2' })).toThrow(
      /tier "gold" is named twice[\s\S]*→ at TIER_THRESHOLDS/,
    )
    expect(() => loadEnv({ TIER_THRESHOLDS: 'silver:100,gold:100' })).toThrow(
      /two tiers start at 100 yen[\s\S]*→ at TIER_THRESHOLDS/,
    )
    // `regular` is everyone below the first threshold: as the top tier, every new customer (a
    // regular) would be shown the vip menu.
    expect(() => loadEnv({ TIER_THRESHOLDS: 'regular:100' })).toThrow(
      /"regular" is the tier below every threshold[\s\S]*→ at TIER_THRESHOLDS/,
    )
    expect(loadEnv({ TIER_THRESHOLDS: 'gold:200000,silver:50000' }).TIER_THRESHOLDS).toEqual([
      { tier: 'silver', minSpend: 50_000 },
      { tier: 'gold', minSpend: 200_000 },
    ])
  })

  it('wants a server in DATABASE_URL: a host, or a socket folder as ?host=', () => {
    for (const bad of ['postgres:/x', 'postgres:///x', 'postgresql:x']) {
      expect(() => loadEnv({ DATABASE_URL: bad }), bad).toThrow(
        /name the server[\s\S]*→ at DATABASE_URL/,
      )
    }
    for (const good of [
      'postgres://root@127.0.0.1:5432/kizuna',
      'postgresql://u:p@db.internal/kizuna',
      'postgres:///kizuna?host=/var/run/postgresql',
    ]) {
      expect(loadEnv({ DATABASE_URL: good }).DATABASE_URL).toBe(good)
    }
  })

  it('refuses a public PUBLIC_BASE_URL without LINE credentials instead of running the sandbox there', () => {
    // A production host whose secret was not injected (unset, or set empty by a template) ran
    // the sandbox, where anyone can act as any LINE user, under its public name.
    for (const unset of [{}, { LINE_CHANNEL_SECRET: '', LINE_CHANNEL_ACCESS_TOKEN: '' }]) {
      for (const url of ['https://crm.shop.example', 'http://192.0.2.10:3000']) {
        let message = ''
        try {
          loadEnv({ PUBLIC_BASE_URL: url, ...unset })
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError)
          message = (error as Error).message
        }
        expect(message, url).toMatch(
          /^Invalid configuration:\n✖ [^\n]*LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN[^\n]*sandbox[^\n]*\n {2}→ at LINE_CHANNEL_SECRET$/,
        )
        expect(message).toContain(new URL(url).hostname)
      }
    }
    // A sandbox run on this machine may name a loopback address; with credentials, any.
    for (const local of ['http://localhost:3000', 'http://127.0.0.1:3000', 'http://[::1]:3000']) {
      expect(isSandbox(loadEnv({ PUBLIC_BASE_URL: local })), local).toBe(true)
    }
    expect(isSandbox(loadEnv({ PUBLIC_BASE_URL: 'https://crm.shop.example', ...LINE }))).toBe(false)
  })

  it('refuses split roles on the embedded database', () => {
    expect(() =>
      loadEnv({ ROLE: 'worker', LINE_CHANNEL_SECRET: 's', LINE_CHANNEL_ACCESS_TOKEN: 't' }),
    ).toThrow(/use ROLE=all\n\s+→ at ROLE/)
  })
})

describe('MAIL_FROM', () => {
  it('takes MAIL_FROM as an address or a name and an address, nothing else', () => {
    for (const ok of ['shop@example.jp', 'Shop <shop@example.jp>', '"店舗" <shop@example.jp>']) {
      expect(loadEnv({ MAIL_FROM: ok }).MAIL_FROM).toBe(ok)
    }
    for (const bad of ['Shop', 'shop@localhost', 'Shop <shop@example.jp', 'a\r\nBcc: x <s@e.jp>']) {
      expect(() => loadEnv({ MAIL_FROM: bad }), bad).toThrow(/MAIL_FROM/)
    }
  })

  it('wants MAIL_FROM with SMTP_URL, naming it', () => {
    // The default sender (no-reply@kizuna.local: .local is reserved) went out through the real
    // relay unannounced, and receiving servers fail it on SPF and DMARC.
    const email = {
      SMTP_URL: 'smtp://mail.example.jp:587',
      PUBLIC_BASE_URL: 'https://shop.example',
      ...LINE,
    }
    expect(() => loadEnv(email)).toThrow(
      /^Invalid configuration:\n✖ set MAIL_FROM with SMTP_URL: [^\n]*\n {2}→ at MAIL_FROM$/,
    )
    expect(loadEnv({ ...email, MAIL_FROM }).MAIL_FROM).toBe(MAIL_FROM)
    // The sandbox mailbox (no SMTP_URL) keeps its default sender.
    expect(loadEnv({}).MAIL_FROM).toBe('Kizuna <no-reply@kizuna.local>')
  })

  it('says a sender at a bare host name (shop@localhost) needs a domain with a dot', () => {
    for (const bare of ['shop@localhost', 'Shop <shop@localhost>']) {
      expect(() => loadEnv({ MAIL_FROM: bare }), bare).toThrow(
        /use a domain with a dot after the @, e\.g\. shop@example\.jp[^\n]*\n\s+→ at MAIL_FROM/,
      )
    }
  })
})
