import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createMailer } from '../../src/email/mailer.ts'
import { createLineLimiters, messageVarsLoaders } from '../../src/main/processors.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { createSendDeliveries } from '../../src/messaging/delivery.jobs.ts'
import {
  insertDeliveries,
  requeueDeliveries,
  SENDING_LEASE_SECONDS,
} from '../../src/messaging/delivery.repo.ts'
import type { SendTools } from '../../src/messaging/delivery-send.service.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import { type Smtp, startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'
import { SAMPLE } from './support.ts'

/** A lease of seconds, not ten minutes: rows in `sending` this long are taken as abandoned. */
const LEASE_SECONDS = 5

const cleanups: (() => Promise<void>)[] = []
let smtp: Smtp
let deps: Deps
let tools: SendTools
beforeAll(async () => {
  smtp = await startSmtp()
  cleanups.push(() => smtp.close())
  // Its own database: the sweeper takes every unfinished row it sees.
  const started = await startPrivateDeps(cleanups, {
    SMTP_URL: smtp.url,
    MAIL_FROM: 'Kizuna Shop <shop@kizuna.test>',
    PUBLIC_BASE_URL: 'https://crm.kizuna.test',
    QUIET_HOURS: '',
  })
  deps = started.deps
  tools = sendTools()
})
beforeEach(() => {
  // An earlier test's server stalls no more (its clients gave up).
  smtp.stall(null)
  smtp.answerStalled()
})
afterAll(async () => {
  smtp?.answerStalled()
  for (const fn of cleanups.reverse()) await fn()
})

/**
 * What a worker sends with, on the short lease (or the real one); each worker process has its
 * own mailer.
 */
function sendTools(leaseSeconds = LEASE_SECONDS): SendTools {
  const mailer = createMailer(deps.env, deps.db, { sandbox: false })
  cleanups.push(async () => mailer.close())
  return {
    mailer,
    limiters: createLineLimiters(deps),
    loaders: messageVarsLoaders(deps.env),
    leaseSeconds,
  }
}

/**
 * The send job run as a worker runs it (the test plays the workers), to its end: a job with
 * deliveries left for a retry throws, as it does for BullMQ.
 */
function sendJob(withTools: SendTools, ids: string[]): Promise<unknown> {
  const job = createSendDeliveries(withTools)
  const ctx = { job: {} as never, worker: {} as never, token: 't' }
  return job.run(deps, { deliveryIds: ids }, ctx).catch((error: unknown) => error)
}

/** Transactional emails to customers without LINE, one each: their addresses and delivery ids. */
async function emails(count: number) {
  const addresses = Array.from({ length: count }, () => `c-${randomUUID()}@example.com`)
  const customers = await deps.db
    .insertInto('customer')
    .values(addresses.map((email) => ({ display_name: 'Yamada Hanako', email })))
    .returning('id')
    .execute()
  // Written, not queued: the test runs the jobs.
  const rows = await insertDeliveries(
    deps.db,
    customers.map((c) => ({
      dedupeKey: `lease-test:${randomUUID()}`,
      kind: 'notice',
      category: 'transactional' as const,
      customerId: c.id,
      content: { templateId: 'campaign-sample', vars: SAMPLE },
    })),
  )
  return { addresses, ids: rows.map((r) => r.id) }
}

const rowsOf = (ids: string[]) =>
  deps.db
    .selectFrom('delivery')
    .select(['id', 'status', 'last_error'])
    .where('id', 'in', ids)
    .orderBy('id')
    .execute()
const statuses = async (ids: string[]) => (await rowsOf(ids)).map((r) => r.status)

/** The deliveries of each job waiting in the queue, among these ids. */
async function waitingJobsOf(ids: string[]): Promise<string[][]> {
  const jobs = await deps.queues.byName.delivery.getJobs(['wait'])
  return jobs
    .map((j) => (j.data as { deliveryIds: string[] }).deliveryIds)
    .filter((job) => job.some((id) => ids.includes(id)))
}

describe('email deliveries and the sending lease', () => {
  it('sends each email once when a slow SMTP server keeps a job past the lease', async () => {
    const { addresses, ids } = await emails(10)
    // A server that answers slowly: the job's first emails wait for it, the rest for a
    // connection, longer than the lease.
    smtp.stall('MAIL FROM')
    const first = sendJob(tools, ids)
    await eventually(() => expect(smtp.stalled).toBe(5))
    smtp.stall(null)

    // The sweeper queues what it finds unfinished, and another worker's job takes it.
    await eventually(
      async () => {
        expect((await sweepOnce(deps, 0, LEASE_SECONDS)).deliveries).toBeGreaterThan(0)
      },
      4 * LEASE_SECONDS * 1000,
    )
    await sendJob(sendTools(), ids)
    // The slow server answers the first job at last.
    smtp.answerStalled()
    await first

    for (const address of addresses) expect(smtp.mailsTo(address)).toHaveLength(1)
    expect(await statuses(ids)).toEqual(ids.map(() => 'sent'))
  })

  it('hands back the emails it could not start within half the lease, unsent, and queues them', async () => {
    const { addresses, ids } = await emails(20)
    // The server answers nothing: each email is given up after a quarter of the lease, and the
    // job starts none after half of it. It is the job's last try.
    smtp.stall('MAIL FROM')
    const job = createSendDeliveries(tools)
    const lastTry = { attemptsMade: 9, opts: { attempts: 10 } }
    const ctx = { job: lastTry as never, worker: {} as never, token: 't' }
    const error = await job.run(deps, { deliveryIds: ids }, ctx).catch((e: Error) => e)
    const rows = await rowsOf(ids)
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => 'pending'))
    const tried = rows.filter((r) => r.last_error !== null).map((r) => r.id)
    const unsent = rows.filter((r) => r.last_error === null).map((r) => r.id)
    expect(unsent.length).toBeGreaterThan(0)
    expect(error).toMatchObject({ message: `${tried.length} of 20 deliveries failed for now` })
    // As the worker does after a last try that failed.
    await job.onFinalFailure?.(deps, { deliveryIds: ids }, error as Error)

    // The ones tried (at the server, or waiting for a connection) are failed with the job; the
    // others wait in a job of their own.
    expect(smtp.stalled).toBeGreaterThan(0)
    expect(smtp.stalled).toBeLessThanOrEqual(tried.length)
    for (const r of await rowsOf(tried)) {
      expect(r).toMatchObject({ status: 'failed', last_error: 'email: the send took over 1.25 s' })
    }
    expect(await statuses(unsent)).toEqual(unsent.map(() => 'pending'))
    expect((await waitingJobsOf(ids)).map((queued) => queued.sort())).toEqual([unsent.sort()])
    smtp.stall(null)
    await sendJob(tools, unsent)
    expect(await statuses(unsent)).toEqual(unsent.map(() => 'sent'))
    const mailed = addresses.filter((a) => smtp.mailsTo(a).length > 0)
    expect(mailed).toHaveLength(unsent.length)
    for (const address of mailed) expect(smtp.mailsTo(address)).toHaveLength(1)
  })

  it('records each email once the server took it, not when the job ends', async () => {
    const { addresses, ids } = await emails(10)
    // The real lease: the job waits for the slow server, and two of its emails get through.
    smtp.stall('MAIL FROM')
    const job = sendJob(sendTools(SENDING_LEASE_SECONDS), ids)
    await eventually(() => expect(smtp.stalled).toBe(5))
    smtp.answerStalled(2)
    const taken = await eventually(() => {
      const mailed = addresses.filter((a) => smtp.mailsTo(a).length > 0)
      expect(mailed).toHaveLength(2)
      return mailed
    })

    // While the job is still under way, their rows say so: a worker that stopped now would
    // leave the others to be taken over after the lease, and only them.
    const sentIds = ids.filter((_, i) => taken.includes(addresses[i]!))
    await eventually(async () => expect(await statuses(sentIds)).toEqual(['sent', 'sent']))
    const others = ids.filter((id) => !sentIds.includes(id))
    expect(await statuses(others)).toEqual(others.map(() => 'sending'))

    smtp.stall(null)
    smtp.answerStalled()
    await job
    expect(await statuses(ids)).toEqual(ids.map(() => 'sent'))
    for (const address of addresses) expect(smtp.mailsTo(address)).toHaveLength(1)
  })

  it('fails an email the server got whole but never answered, and never sends it again', async () => {
    const { addresses, ids } = await emails(1)
    smtp.stall('DATA')
    await sendJob(tools, ids)
    smtp.stall(null)

    const [row] = await rowsOf(ids)
    expect(row?.status).toBe('failed')
    expect(row?.last_error).toBe('email outcome unknown: the send took over 1.25 s')
    expect(smtp.mailsTo(addresses[0]!)).toHaveLength(1)
    // Not by another job, nor by `kizuna deliveries retry --status failed`.
    await sendJob(tools, ids)
    await requeueDeliveries(deps.db, { status: 'failed' })
    expect(await statuses(ids)).toEqual(['failed'])
    expect(smtp.mailsTo(addresses[0]!)).toHaveLength(1)
  })
})
