import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { requeueDeliveries } from '../../src/messaging/delivery-requeue.repo.ts'
import type { SendTools } from '../../src/messaging/delivery-send.service.ts'
import type { Deps } from '../../src/platform/deps.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { insertFriend } from '../richmenu/richmenu-link-fixtures.ts'
import { startDatabaseProxy } from '../support/frozen-proxy.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import { type Smtp, startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'
import {
  deliveryRows,
  emailNotices,
  emailSettings,
  leasedSendTools,
  MULTICAST,
  notices,
  SAMPLE,
  sendJobToEnd,
} from './support.ts'

/** A lease of seconds, not ten minutes: rows in `sending` this long are taken as abandoned. */
const LEASE_SECONDS = 3

const cleanups: (() => Promise<void>)[] = []
let smtp: Smtp
let deps: Deps
let line: LinePlatform
let tools: SendTools
let proxy: Awaited<ReturnType<typeof startDatabaseProxy>>
beforeAll(async () => {
  smtp = await startSmtp()
  cleanups.push(() => smtp.close())
  // Kizuna reaches its own database through a proxy the tests cut: Postgres goes away.
  const database = await createPrivateDatabase()
  cleanups.push(() => database.drop())
  proxy = await startDatabaseProxy(database.url)
  cleanups.push(() => proxy.close())
  const started = await startPrivateDeps(cleanups, {
    DATABASE_URL: proxy.url,
    ...emailSettings(smtp.url),
  })
  deps = started.deps
  line = started.line
  tools = leasedSendTools(deps, cleanups, LEASE_SECONDS)
})
beforeEach(async () => {
  proxy.restore()
  // The sweeper looks for deliveries once their queue has caught up (the tests play the workers).
  await eventually(() => deps.queues.byName.delivery.drain())
})
afterAll(async () => {
  proxy?.restore()
  for (const fn of cleanups.reverse()) await fn()
})

/** The send job run as a worker runs it (the test plays the workers), to its end. */
const sendJob = (ids: string[]) => sendJobToEnd(deps, tools, ids)

/** Postgres is back; once the lease is over, the sweeper finds the rows and a job takes them. */
async function sweptAndSentAgain(ids: string[]): Promise<void> {
  proxy.restore()
  // The job's retry (BullMQ's backoff is shorter than the lease) finds them still leased.
  await sendJob(ids)
  await eventually(
    async () => {
      expect((await sweepOnce(deps, 0, LEASE_SECONDS)).deliveries).toBeGreaterThan(0)
    },
    4 * LEASE_SECONDS * 1000,
  )
  await deps.queues.byName.delivery.drain()
  await sendJob(ids)
}

describe('a send whose outcome Postgres was away to record', () => {
  it('does not send an email again that the SMTP server took', async () => {
    const { addresses, ids } = await emailNotices(deps, 1)
    const address = addresses[0]!
    // The server takes the message just as Postgres goes away.
    const held = smtp.holdRecipient(address)
    const job = sendJob(ids)
    await held.reached
    proxy.cut()
    held.answer(null)
    expect(await job).toBeInstanceOf(Error)
    expect(smtp.mailsTo(address)).toHaveLength(1)

    await sweptAndSentAgain(ids)
    expect(smtp.mailsTo(address)).toHaveLength(1)
    const [row] = await deliveryRows({ deps }, ids)
    expect(row).toMatchObject({ status: 'failed' })
    expect(row!.last_error).toMatch(/^email outcome unknown: /)
    // Never sent again, not even by `kizuna deliveries retry`.
    expect((await requeueDeliveries(deps.db, { status: 'failed', kind: 'notice' })).requeued).toBe(
      0,
    )
  }, 30_000)

  it('repeats a requeued multicast chunk LINE took under its key, not under a new one', async () => {
    const users = [line.users.create(), line.users.create()]
    const customers: string[] = []
    for (const u of users) {
      await line.users.follow(u.userId)
      customers.push((await insertFriend(deps, { lineUid: u.userId })).customerId)
    }
    const ids = await notices(deps, customers)
    const received = (userId: string) =>
      line.inbox(userId).filter((m) => String(m.message.altText).includes(SAMPLE.headline!))
    // LINE refuses the chunk (400); the template is fixed, and the operator sends it again.
    line.failNext({
      method: 'POST',
      path: MULTICAST,
      status: 400,
      count: 1,
      body: { message: 'bad' },
    })
    await sendJob(ids)
    const refused = await deliveryRows({ deps }, ids)
    expect(refused.map((r) => r.status)).toEqual(['failed', 'failed'])
    expect(refused[0]!.last_error).toMatch(/^LINE 400: /)
    // LINE took nothing under the chunk's key: its first call is forgotten with the outcome.
    expect(refused.map((r) => r.line_first_call_at)).toEqual([null, null])
    expect((await requeueDeliveries(deps.db, { status: 'failed', kind: 'notice' })).requeued).toBe(
      2,
    )

    // The new chunk goes; LINE takes it just as Postgres goes away.
    const call = line.holdNext({ method: 'POST', path: MULTICAST })
    const job = sendJob(ids)
    await call.arrived
    proxy.cut()
    call.release()
    expect(await job).toBeInstanceOf(Error)
    for (const u of users) expect(received(u.userId)).toHaveLength(1)

    await sweptAndSentAgain(ids)
    for (const u of users) expect(received(u.userId)).toHaveLength(1)
    const multicasts = line.requestsTo('POST', MULTICAST)
    // The refused one, the one LINE took, and its repeat under the same key (a 409).
    expect(multicasts).toHaveLength(3)
    expect(multicasts[2]!.headers['x-line-retry-key']).toBe(
      multicasts[1]!.headers['x-line-retry-key'],
    )
    const rows = await deliveryRows({ deps }, ids)
    expect(rows.map((r) => r.status)).toEqual(['sent', 'sent'])
  }, 30_000)
})
