import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMailer } from '../../src/email/mailer.ts'
import { linkRoutes } from '../../src/linking/link.routes.ts'
import { signLinkAssertion } from '../../src/linking/link-assertion.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { createMetrics } from '../../src/platform/metrics.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'

// GET /link/callback needs no login: anyone can send it bad signatures. Each is counted; the
// operator's warning (the two sides' secrets may differ) is logged at most once a minute.
let k: TestKizuna
beforeAll(async () => {
  k = await startTestKizuna({
    LINK_LOGIN_URL: 'https://shop.example/login',
    LINK_ASSERTION_SECRET: 'shop-login-assertion-secret-0123456789',
  })
})
afterAll(async () => {
  await k?.stopAll()
})

describe('GET /link/callback with bad signatures', () => {
  it('counts every one and warns at most once a minute', async () => {
    const logs = logSink()
    const metrics = createMetrics()
    let now = Date.parse('2026-12-01T00:00:00Z')
    const mailer = createMailer(k.deps.env, k.deps.db, { sandbox: false })
    const routes = linkRoutes(
      {
        ...k.deps,
        log: createLogger('info', logs.sink),
        metrics,
        clock: { now: () => new Date(now) },
      },
      mailer,
    )
    const forged = signLinkAssertion('x'.repeat(40), {
      externalId: 'SHOP-1',
      linkToken: 'any',
      exp: Math.floor(now / 1000) + 300,
    })
    const callback = async () => {
      const res = await routes.request(`/link/callback?assertion=${encodeURIComponent(forged)}`)
      expect(res.status).toBe(400)
    }
    const warnings = () => logs.lines.filter((l) => l.includes('LINK_ASSERTION_SECRET')).length

    for (let i = 0; i < 20; i++) await callback()
    expect(warnings()).toBe(1)
    now += 59_000
    await callback()
    expect(warnings()).toBe(1)
    now += 2_000
    await callback()
    expect(warnings()).toBe(2)
    const counted = await metrics.registry.getSingleMetricAsString(
      'kizuna_link_assertion_bad_signatures_total',
    )
    expect(counted).toContain('kizuna_link_assertion_bad_signatures_total 22')
  })
})
