import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setConsent } from '../../src/consent/consent.service.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import type { SendTools } from '../../src/messaging/delivery-send.service.ts'
import type { Deps } from '../../src/platform/deps.ts'
import type { Smtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'
import {
  deliveryRows,
  emailCustomer,
  emailNotices,
  leasedSendTools,
  SAMPLE,
  sendJobToEnd,
  startEmailDeps,
  tokyoHhMm,
} from './support.ts'

// A send job decides quiet hours and consent when it claims its rows, and its emails then wait for
// a slot (8 per process: pLimit in email-batch.ts) for up to half the lease (5 minutes). A
// marketing email whose slot comes inside quiet hours, or after the person unsubscribed, must not
// go: each email checks both again as it takes its slot.

const HOUR_MS = 60 * 60_000
const cleanups: (() => Promise<void>)[] = []
let smtp: Smtp
let deps: Deps
/** What the store's clock reads (deps.clock): the tests move it on. */
let clockNow: Date
let windowEnd: Date
beforeAll(async () => {
  const started = await startEmailDeps(cleanups)
  smtp = started.smtp
  // Quiet hours from an hour to three hours from now (store time, to the minute).
  const now = Date.now()
  windowEnd = new Date(Math.floor(now / 60_000) * 60_000 + 3 * HOUR_MS)
  const quietHours = `${tokyoHhMm(new Date(now + HOUR_MS))}-${tokyoHhMm(windowEnd)}`
  deps = {
    ...started.deps,
    env: { ...started.deps.env, QUIET_HOURS: quietHours, TZ_STORE: 'Asia/Tokyo' },
    clock: { now: () => clockNow },
  }
})
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** A marketing email to a customer without LINE who said yes to marketing email. */
async function marketingEmail() {
  const customer = await emailCustomer(deps, { marketingEmail: true })
  const [row] = await insertDeliveries(deps.db, [
    {
      dedupeKey: `campaign-test:${randomUUID()}`,
      kind: 'campaign',
      category: 'marketing',
      customerId: customer.id,
      content: { templateId: 'campaign-sample', vars: SAMPLE },
    },
  ])
  return { ...customer, deliveryId: row!.id }
}

/**
 * Runs `job` (a send job over a marketing email) while another job's emails hold every slot at
 * the SMTP server; once `job` has decided its sends (its template rendered), `meanwhile` runs,
 * then the slots are freed and both jobs end.
 */
async function withSlotsTaken(
  job: (tools: SendTools) => Promise<unknown>,
  meanwhile: () => Promise<void>,
): Promise<void> {
  const { addresses, ids } = await emailNotices(deps, 8)
  const held = addresses.map((address) => smtp.holdRecipient(address))
  let reached = 0
  for (const h of held) void h.reached.then(() => reached++)
  const holding = sendJobToEnd(deps, leasedSendTools(deps, cleanups, 600), ids)
  // The pool's 5 connections wait at the server, the other 3 emails for a connection: all 8
  // slots are taken.
  await eventually(() => expect(reached).toBe(5))

  let rendered!: () => void
  const decided = new Promise<void>((resolve) => {
    rendered = resolve
  })
  const tools = leasedSendTools(deps, cleanups, 600)
  // The campaign's template completed as a loader would (after consent and quiet hours were
  // read): the email then waits for a slot.
  tools.loaders = {
    ...tools.loaders,
    'campaign-sample': async (_deps, delivery) => {
      rendered()
      return delivery.vars
    },
  }
  const waiting = job(tools)
  await decided
  await meanwhile()
  for (const h of held) h.answer(null)
  await Promise.all([holding, waiting])
  expect(reached).toBe(8)
  for (const address of addresses) expect(smtp.mailsTo(address)).toHaveLength(1)
}

describe('a marketing email waiting for its send slot', () => {
  it('is handed back until quiet hours end when its slot comes inside them', async () => {
    clockNow = new Date()
    const email = await marketingEmail()
    await withSlotsTaken(
      (tools) => sendJobToEnd(deps, tools, [email.deliveryId]),
      async () => {
        // Quiet hours begin while it waits.
        clockNow = new Date(Date.now() + 2 * HOUR_MS)
      },
    )
    const [row] = await deliveryRows({ deps }, [email.deliveryId])
    expect(row).toMatchObject({ status: 'pending', send_after: windowEnd, email_trying_at: null })
    expect(smtp.mailsTo(email.email)).toHaveLength(0)
    // A job is due at the window's end.
    const jobs = await deps.queues.byName.delivery.getJobs(['delayed'])
    expect(jobs.map((j) => j.data)).toContainEqual({ deliveryIds: [email.deliveryId] })
  })

  it('is skipped when the person unsubscribes while it waits', async () => {
    clockNow = new Date()
    const email = await marketingEmail()
    await withSlotsTaken(
      (tools) => sendJobToEnd(deps, tools, [email.deliveryId]),
      async () => {
        // The one-click unsubscribe in an earlier email.
        await setConsent(deps.db, email.id, {
          category: 'marketing',
          channel: 'email',
          granted: false,
          source: 'email-unsubscribe',
        })
      },
    )
    const [row] = await deliveryRows({ deps }, [email.deliveryId])
    expect(row).toMatchObject({ status: 'skipped', skip_reason: 'no_marketing_consent_email' })
    expect(smtp.mailsTo(email.email)).toHaveLength(0)
  })
})
