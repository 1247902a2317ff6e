import { once } from 'node:events'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Env } from '../../src/config/env.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { enqueueDeliveries } from '../../src/messaging/delivery.service.ts'
import type { SendTools } from '../../src/messaging/delivery-send.service.ts'
import { EMAIL_OUTCOME_UNKNOWN } from '../../src/messaging/outcome-unknown.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN } from '../support/harness.ts'
import type { Smtp } from '../support/smtp.ts'
import { spawnKizuna } from '../support/spawned.ts'
import { eventually } from '../support/wait.ts'
import {
  deliveryRows,
  emailNotices,
  emailSettings,
  leasedSendTools,
  sendJobToEnd,
  startEmailDeps,
} from './support.ts'

/** The lease the jobs after the crash claim with: rows in `sending` this long are abandoned. */
const LEASE_SECONDS = 3
/** How many emails a worker process has on their way at once (emailSlots in email-batch.ts). */
const EMAILS_UNDER_WAY = 8
const EMAILS = 30

const cleanups: (() => Promise<void>)[] = []
let smtp: Smtp
let deps: Deps
let env: Env
let tools: SendTools
beforeAll(async () => {
  const started = await startEmailDeps(cleanups)
  smtp = started.smtp
  deps = started.deps
  env = started.env
  tools = leasedSendTools(deps, cleanups, LEASE_SECONDS)
})
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** `npm start` as a worker process on the test's database, queues and SMTP server. */
async function startWorkerProcess() {
  const { child, output } = await spawnKizuna({
    ROLE: 'worker',
    DATABASE_URL: env.DATABASE_URL!,
    QUEUE_PREFIX: deps.queues.prefix,
    LINE_CHANNEL_SECRET: TEST_CHANNEL_SECRET,
    LINE_CHANNEL_ACCESS_TOKEN: TEST_CHANNEL_TOKEN,
    LINE_API_BASE_URL: env.LINE_API_BASE_URL,
    LINE_DATA_API_BASE_URL: env.LINE_DATA_API_BASE_URL,
    ...emailSettings(smtp.url),
    SWEEP_INTERVAL_MS: '3600000',
    LOG_LEVEL: 'info',
  })
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  await eventually(() => expect(output()).toContain('Kizuna started'), 30_000)
  return { child, output }
}

describe('a worker process killed during a send job of emails', () => {
  it('leaves the emails it had not started to be sent once, not failed as unknown', async () => {
    const { addresses, ids } = await emailNotices(deps, EMAILS)
    // The server keeps each message it gets and leaves it unanswered: the first to arrive is
    // under way when the worker dies, and so are the others then on a connection.
    smtp.stall('DATA')
    const { child } = await startWorkerProcess()
    await enqueueDeliveries(
      deps.queues,
      ids.map((id) => ({ id })),
    )
    await eventually(() => expect(smtp.mails.length).toBeGreaterThan(0), 30_000)
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
    // What reached the server before the kill (a message written whole just before it may
    // still be read after: let the server read it).
    await new Promise((r) => setTimeout(r, 200))
    const reachedBefore = addresses.filter((a) => smtp.mailsTo(a).length > 0)
    expect(reachedBefore.length).toBeLessThanOrEqual(EMAILS_UNDER_WAY)
    smtp.stall(null)
    smtp.answerStalled()

    // After the lease, the sweeper finds the rows the dead worker left in `sending`, and a
    // worker (this process) takes them over, until none is left to send.
    await eventually(
      async () => {
        expect((await sweepOnce(deps, 0, LEASE_SECONDS)).deliveries).toBeGreaterThan(0)
      },
      4 * LEASE_SECONDS * 1000,
    )
    await deps.queues.byName.delivery.drain()
    await eventually(async () => {
      await sendJobToEnd(deps, tools, ids)
      const rows = await deliveryRows({ deps }, ids)
      expect(rows.filter((r) => r.status === 'pending' || r.status === 'sending')).toEqual([])
    }, 20_000)

    const rows = await deliveryRows({ deps }, ids)
    // Nobody got the email twice.
    for (const a of addresses) expect(smtp.mailsTo(a).length).toBeLessThanOrEqual(1)
    // Each row is sent (its one email arrived after the crash) or failed as possibly sent.
    const unknown = rows.filter((r) => r.status === 'failed')
    for (const r of unknown) expect(r.last_error).toMatch(new RegExp(`^${EMAIL_OUTCOME_UNKNOWN}: `))
    for (const [i, r] of rows.entries()) {
      if (r.status === 'sent') expect(smtp.mailsTo(addresses[i]!)).toHaveLength(1)
      else expect(r.status).toBe('failed')
    }
    // Only the emails under way when the worker died may have gone: the rest were sent.
    expect(unknown.length).toBeLessThanOrEqual(EMAILS_UNDER_WAY)
    for (const a of reachedBefore) {
      expect(rows[addresses.indexOf(a)]!.status).toBe('failed')
    }
  }, 90_000)
})
