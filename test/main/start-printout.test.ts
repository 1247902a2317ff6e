import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { afterAll, describe, expect, it } from 'vitest'
import { spawnKizuna } from '../support/spawned.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

describe('npm start without LINE credentials', () => {
  it('prints where the simulated LINE app and the sandbox mailbox are, and both answer', async () => {
    const { port, child, output } = await spawnKizuna({
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
  }, 60_000)
})
