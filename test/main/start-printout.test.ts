import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NO_ACCOUNT_PROOF_WARNING } from '../../src/linking/link-proof.ts'
import { sparePort } from '../support/ports.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import { startSmtp } from '../support/smtp.ts'
import { spawnKizuna, spawnKizunaOnLine, warningsIn } from '../support/spawned.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** The sandbox's database: the shared test database serves the test channel, not the sandbox. */
let sandboxDatabaseUrl = ''
beforeAll(async () => {
  const database = await createPrivateDatabase()
  cleanups.push(() => database.drop())
  sandboxDatabaseUrl = database.url
})

describe('npm start without LINE credentials', () => {
  it('prints where the simulated LINE app and the sandbox mailbox are, and both answer', async () => {
    const { port, child, output } = await spawnKizuna({
      DATABASE_URL: sandboxDatabaseUrl,
      QUEUE_PREFIX: `test-${randomUUID()}`,
      LOG_LEVEL: 'warn',
    })
    cleanups.push(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      await once(child, 'exit')
    })
    await eventually(() => expect(output()).toContain('sandbox LINE API'), 30_000)
    const base = `http://127.0.0.1:${port}`
    expect(output()).toContain(`simulated LINE app:  ${base}/sandbox`)
    expect(output()).toContain(`sandbox mailbox:     ${base}/sandbox/mail`)
    expect((await fetch(`${base}/sandbox/mail`)).status).toBe(200)
    // The sandbox mailbox takes the account-link codes: linking works, nothing to warn about.
    expect(output()).not.toContain('LINK_LOGIN_URL')
    expect((await fetch(`${base}/sandbox/`)).status).toBe(200)
    // The address printed first ("Kizuna is running at …") opens the simulated LINE app.
    expect(output()).toContain(`Kizuna is running at ${base}\n`)
    const root = await fetch(`${base}/`, { redirect: 'manual' })
    expect(root.status).toBe(302)
    expect(root.headers.get('location')).toBe('/sandbox/')
    // No public address: /metrics is this host's alone (checked last: warnings are written
    // asynchronously, and the other test sees this one appear).
    expect(output()).not.toContain('METRICS_TOKEN')
  }, 60_000)

  it('refuses to start the sandbox under a public PUBLIC_BASE_URL, naming the LINE credentials', async () => {
    // A deploy whose secrets were not injected: the variables are there, empty.
    const { child, output } = await spawnKizuna({
      QUEUE_PREFIX: `test-${randomUUID()}`,
      PUBLIC_BASE_URL: 'https://crm.shop.example',
      LINE_CHANNEL_SECRET: '',
      LINE_CHANNEL_ACCESS_TOKEN: '',
    })
    cleanups.push(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      await once(child, 'exit')
    })
    const [code] = await once(child, 'exit')
    expect(code).toBe(1)
    expect(output()).toMatch(
      /PUBLIC_BASE_URL names crm\.shop\.example, but LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN are unset or empty[^\n]*\n {2}→ at LINE_CHANNEL_SECRET/,
    )
    expect(output()).not.toContain('sandbox LINE API')
  }, 60_000)
})

describe('npm start with SMTP_URL', () => {
  it('refuses to start without PUBLIC_BASE_URL, which every email’s unsubscribe link names', async () => {
    const { child, output } = await spawnKizuna({
      QUEUE_PREFIX: `test-${randomUUID()}`,
      SMTP_URL: 'smtp://127.0.0.1:1',
      PUBLIC_BASE_URL: '',
    })
    const [code] = await once(child, 'exit')
    expect(code).toBe(1)
    expect(output()).toMatch(/set PUBLIC_BASE_URL with SMTP_URL[^\n]*\n {2}→ at PUBLIC_BASE_URL/)
  }, 60_000)

  it('warns once that a plain-http PUBLIC_BASE_URL gets no one-click unsubscribe, and starts', async () => {
    const smtp = await startSmtp()
    cleanups.push(() => smtp.close())
    const port = await sparePort()
    const { child, output } = await spawnKizuna({
      DATABASE_URL: sandboxDatabaseUrl,
      QUEUE_PREFIX: `test-${randomUUID()}`,
      LOG_LEVEL: 'warn',
      PORT: String(port),
      SMTP_URL: smtp.url,
      MAIL_FROM: 'Shop <shop@example.jp>',
      PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    })
    cleanups.push(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      await once(child, 'exit')
    })
    await eventually(() => expect(output()).toContain('sandbox LINE API'), 30_000)
    const warnings = output()
      .split('\n')
      .filter((line) => line.includes('RFC 8058'))
    expect(warnings).toHaveLength(1)
    expect(JSON.parse(warnings[0] ?? '{}')).toMatchObject({
      level: 40,
      msg: expect.stringMatching(/^PUBLIC_BASE_URL is plain http/),
    })
    // Email goes to the SMTP server, not the sandbox mailbox.
    expect(output()).not.toContain('sandbox mailbox')
    // A public address and no METRICS_TOKEN: a proxy on this host could open /metrics.
    await eventually(() => expect(output()).toContain('METRICS_TOKEN is unset'))
    const metrics = output()
      .split('\n')
      .filter((line) => line.includes('METRICS_TOKEN is unset'))
    expect(metrics).toHaveLength(1)
    expect(JSON.parse(metrics[0] ?? '{}')).toMatchObject({ level: 40 })
  }, 60_000)
})

/** Starts Kizuna against LINE with `env`, stops it, and expects no warning that account link is off. */
async function expectAccountLinkOn(env: NodeJS.ProcessEnv) {
  const { child, output } = await spawnKizunaOnLine(cleanups, {
    QUEUE_PREFIX: `test-${randomUUID()}`,
    ...env,
  })
  // Its warnings are all written by the time it has stopped.
  const closed = once(child, 'close')
  child.kill('SIGTERM')
  await closed
  expect(output()).toContain('"msg":"stopped"')
  expect(warningsIn(output())).not.toContain(NO_ACCOUNT_PROOF_WARNING)
  expect(output()).not.toContain('account link is off')
}

// Without a way to prove an online account, a warning says account link is off (shutdown.test.ts).
describe('npm start with LINE credentials and a way to prove an online account', () => {
  it('with SMTP_URL (codes by email): no warning that account link is off', async () => {
    const smtp = await startSmtp()
    cleanups.push(() => smtp.close())
    await expectAccountLinkOn({
      SMTP_URL: smtp.url,
      MAIL_FROM: 'Shop <shop@example.jp>',
      PUBLIC_BASE_URL: 'https://shop.example',
    })
  }, 60_000)

  it("with LINK_LOGIN_URL (the shop's login): no warning that account link is off", async () => {
    await expectAccountLinkOn({
      LINK_LOGIN_URL: 'https://shop.example/login',
      LINK_ASSERTION_SECRET: 'a-secret-of-at-least-32-characters',
    })
  }, 60_000)
})
