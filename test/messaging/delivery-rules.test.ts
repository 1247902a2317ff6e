import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { jobIds } from '../../src/jobs.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { requeueDeliveries } from '../../src/messaging/delivery-requeue.repo.ts'
import { claimDeliveriesWithMarketingCounts } from '../../src/messaging/marketing-cap.repo.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import {
  campaign,
  campaignInbox,
  deliveryRow,
  deliveryRows,
  finishedJob,
  newFriend,
  pushesTo,
  SAMPLE,
  sendJob,
  tokyoHhMm,
  WEEK_MS,
  waitForStatus,
} from './support.ts'

describe('quiet hours', () => {
  let k: TestKizuna
  /** The window's end: an hour from when the window was set, to the minute. */
  let windowEnd: Date

  beforeAll(async () => {
    const now = new Date()
    const start = tokyoHhMm(new Date(now.getTime() - 60 * 60_000))
    const end = tokyoHhMm(new Date(now.getTime() + 60 * 60_000))
    windowEnd = new Date(Math.floor(now.getTime() / 60_000) * 60_000 + 60 * 60_000)
    // HH:MM formatting wraps at midnight by itself (e.g. 23:30-01:30).
    k = await startTestKizuna({ QUIET_HOURS: `${start}-${end}`, TZ_STORE: 'Asia/Tokyo' })
  })
  afterAll(async () => {
    await k.stopAll()
  })

  it('marketing waits for the window’s end; transactional goes out at once', async () => {
    const f = await newFriend(k)
    const [marketingId, transactionalId] = await scheduleDeliveries(k.deps, [
      campaign(f),
      campaign(f, { category: 'transactional', displayName: 'transactional' }),
    ])

    await waitForStatus(k, [transactionalId!], 'sent')
    const marketing = await deliveryRow(k, marketingId!)
    expect(marketing.status).toBe('pending')
    expect(Math.abs(marketing.send_after.getTime() - windowEnd.getTime())).toBeLessThanOrEqual(
      60_000,
    )
    expect(marketing.sent_at).toBeNull()
    const pushes = pushesTo(k, f.userId)
    expect(pushes).toHaveLength(1)
    expect(
      String((pushes[0]!.body as { messages: { altText: string }[] }).messages[0]!.altText),
    ).toContain('transactional')
    // It is not forgotten: a job is due at the window's end.
    const due = await k.deps.queues.byName.delivery.getJob(
      jobIds.deliveriesAt([marketingId!], marketing.send_after.getTime(), marketing.attempts),
    )
    expect(await due?.getState()).toBe('delayed')
    expect(due!.data).toEqual({ deliveryIds: [marketingId] })
    expect(due!.timestamp + due!.delay).toBeGreaterThanOrEqual(marketing.send_after.getTime() - 1)
  })

  // The sweeper's jobs have ids of their own: the delivery's first job (kept by BullMQ after it
  // finished) has `delivery-<id>`, and an add under a kept id would be ignored.
  it('a deferred delivery found due by the sweeper is sent (a delivery scheduled on its own)', async () => {
    const f = await newFriend(k)
    const [id] = await scheduleDeliveries(k.deps, [campaign(f)])
    await eventually(async () => {
      const row = await deliveryRow(k, id!)
      expect(row.status).toBe('pending')
      expect(row.send_after.getTime()).toBeGreaterThan(Date.now())
    })
    await finishedJob(k, id!)
    await sendDueAfterWindow(k, [id!])
    expect(pushesTo(k, f.userId)).toHaveLength(1)
  })

  it('a deferred delivery found due by the sweeper is sent (deliveries scheduled together)', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => campaign(f)),
    )
    await eventually(async () => {
      const rows = await deliveryRows(k, ids)
      expect(rows.map((r) => r.status)).toEqual(['pending', 'pending'])
      expect(rows.every((r) => r.send_after.getTime() > Date.now())).toBe(true)
    })
    await sendDueAfterWindow(k, ids)
  })

  // A job that runs in the last moments of the window defers its deliveries by less than the
  // claim's tolerance (250 ms). They must still get a job for the window's end: grouped as due,
  // they had the running job's own id, which BullMQ dropped, and waited for the sweeper (which
  // looks only once the queue is idle: after the rest of the campaign).
  it('a delivery deferred in the window’s last moments still gets a job for its end', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    const realClock = k.deps.clock
    k.deps.clock = { now: () => new Date(windowEnd.getTime() - 100) }
    try {
      const ids = await scheduleDeliveries(
        k.deps,
        friends.map((f) => campaign(f)),
      )
      const rows = await eventually(async () => {
        const rows = await deliveryRows(k, ids)
        expect(rows.map((r) => [r.status, r.attempts])).toEqual([
          ['pending', 1],
          ['pending', 1],
        ])
        return rows
      })
      for (const row of rows) expect(row.send_after.getTime()).toBe(windowEnd.getTime())
      // Both in one job at the window's end (they may go in one multicast then).
      const delayed = await k.deps.queues.byName.delivery.getDelayed()
      const due = delayed.filter((j) => j.data.deliveryIds.some((id: string) => ids.includes(id)))
      expect(due).toHaveLength(1)
      expect(new Set(due[0]!.data.deliveryIds)).toEqual(new Set(ids))
      expect(due[0]!.id).toBe(jobIds.deliveriesAt(due[0]!.data.deliveryIds, windowEnd.getTime(), 1))
    } finally {
      k.deps.clock = realClock
    }
  })
})

/**
 * As if the quiet hours were over:
 the rows are due (send_after now, in SQL) and the clock is
 * past the window's end; the delayed jobs are still hours away, so only the sweeper can send them.
 */
async function sendDueAfterWindow(k: TestKizuna, ids: string[]) {
  await k.deps.db
    .updateTable('delivery')
    .set({ send_after: sql<Date>`now()` })
    .where('id', 'in', ids)
    .execute()
  const realClock = k.deps.clock
  k.deps.clock = { now: () => new Date(Date.now() + 2 * 60 * 60_000) }
  try {
    await sweepOnce(k.deps, 0)
    return await waitForStatus(k, ids, 'sent', 10_000)
  } finally {
    k.deps.clock = realClock
  }
}

describe('weekly marketing cap', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '1' })
  })
  afterAll(async () => {
    await k.stopAll()
  })
  beforeEach(() => {
    k.line.clearRequests()
  })

  it('two in one batch: one is sent, the other waits a week from then', async () => {
    const f = await newFriend(k)
    const ids = await scheduleDeliveries(k.deps, [campaign(f), campaign(f)])

    const rows = await eventually(async () => {
      const rows = await deliveryRows(k, ids)
      expect(rows.map((r) => r.status).sort()).toEqual(['pending', 'sent'])
      return rows
    })
    const sent = rows.find((r) => r.status === 'sent')!
    const waiting = rows.find((r) => r.status === 'pending')!
    expect(
      Math.abs(waiting.send_after.getTime() - (sent.sent_at!.getTime() + WEEK_MS)),
    ).toBeLessThanOrEqual(60_000)
    expect(pushesTo(k, f.userId)).toHaveLength(1)
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })

  it('over the cap a later one waits until the counted send turns a week old, or is skipped', async () => {
    const f = await newFriend(k)
    const [firstId] = await scheduleDeliveries(k.deps, [campaign(f)])
    const [first] = await waitForStatus(k, [firstId!], 'sent')

    const [deferId, skipId] = await scheduleDeliveries(k.deps, [
      campaign(f),
      campaign(f, { overCap: 'skip' }),
    ])
    const [deferred, skipped] = await eventually(async () => {
      const rows = await deliveryRows(k, [deferId!, skipId!])
      expect(rows.map((r) => r.status)).toEqual(['pending', 'skipped'])
      expect(rows[0]!.send_after.getTime()).toBeGreaterThan(Date.now())
      return rows
    })
    expect(
      Math.abs(deferred!.send_after.getTime() - (first!.sent_at!.getTime() + WEEK_MS)),
    ).toBeLessThanOrEqual(1_000)
    expect(skipped!.skip_reason).toBe('weekly_cap')
    expect(pushesTo(k, f.userId)).toHaveLength(1)

    // Transactional messages ignore the cap.
    const [txId] = await scheduleDeliveries(k.deps, [campaign(f, { category: 'transactional' })])
    await waitForStatus(k, [txId!], 'sent')
    expect(pushesTo(k, f.userId)).toHaveLength(2)
    expect((await deliveryRow(k, deferId!)).status).toBe('pending')
  })

  // Jobs running at the same time (worker concurrency 4, more processes) must not all see room:
  // the claim counts the customer's marketing sends under a lock per customer.
  it('campaigns whose jobs run at the same time still send at most the cap', async () => {
    const f = await newFriend(k)
    const scheduled = await Promise.all(
      Array.from({ length: 6 }, () => scheduleDeliveries(k.deps, [campaign(f)])),
    )
    const ids = scheduled.flat()
    expect(ids).toHaveLength(6)
    const rows = await eventually(async () => {
      const rows = await deliveryRows(k, ids)
      for (const r of rows) {
        const deferred = r.status === 'pending' && r.send_after.getTime() > Date.now() + WEEK_MS / 2
        expect(r.status === 'sent' || deferred).toBe(true)
      }
      return rows
    })
    expect(rows.filter((r) => r.status === 'sent')).toHaveLength(1)
  })

  it('a job that also names a delivery another job is sending counts that send', async () => {
    const f = await newFriend(k)
    const queue = k.deps.queues.byName.delivery
    const send = sendJob(k)
    await queue.pause() // this test plays the workers
    try {
      const [a] = await scheduleDeliveries(k.deps, [campaign(f)])
      const [b] = await scheduleDeliveries(k.deps, [campaign(f)])
      // One job has claimed `a` and is sending it (waiting for the limiter, say)...
      const first = await claimDeliveriesWithMarketingCounts(k.deps.db, [a!], 1)
      expect(first.rows.map((r) => r.id)).toEqual([a])
      // ...when another job names both (the sweeper regroups unfinished rows as it finds them).
      await send([a!, b!])

      const later = await deliveryRow(k, b!)
      expect(later.status).toBe('pending')
      expect(later.send_after.getTime()).toBeGreaterThan(Date.now() + WEEK_MS / 2)
      expect(pushesTo(k, f.userId)).toHaveLength(0)
    } finally {
      await queue.resume()
    }
  })

  // A push whose answer was lost (a timeout after LINE took it) goes again under its retry key,
  // which LINE honours for 24 hours. Deferred by the cap (up to a week), it went after that, as
  // a new request: the person got the message twice.
  it('a push that may have reached LINE is retried under its key, not deferred past its life', async () => {
    const f = await newFriend(k)
    const queue = k.deps.queues.byName.delivery
    const sendIds = sendJob(k)
    const send = (id: string) => sendIds([id])
    const received = (name: string) =>
      k.line.inbox(f.userId).filter((m) => String(m.message.altText).startsWith(name))
    await queue.pause() // this test plays the workers
    try {
      const [first] = await scheduleDeliveries(k.deps, [campaign(f, { displayName: 'first' })])
      await send(first!)
      expect(received('first')).toHaveLength(1)
      // LINE took the push, but its answer was lost: the row waits for a retry with the request
      // it stored, as after a timeout.
      const [push] = pushesTo(k, f.userId)
      await k.deps.db
        .updateTable('delivery')
        .set({ status: 'pending', sent_at: null, push_body: JSON.stringify(push!.body) })
        .where('id', '=', first!)
        .execute()
      // The waiting push counts in the week's cap (1), so another campaign waits for room...
      const [second] = await scheduleDeliveries(k.deps, [campaign(f, { displayName: 'second' })])
      await send(second!)
      expect(received('second')).toHaveLength(0)
      expect((await deliveryRow(k, second!)).status).toBe('pending')
      // ...but the week may be full all the same (one sent while the cap was higher).
      await k.deps.db
        .updateTable('delivery')
        .set({ status: 'sent', sent_at: sql<Date>`now()`, channel: 'line' })
        .where('id', '=', second!)
        .execute()

      await send(first!) // the retry
      // Were it deferred until the cap has room, LINE would have forgotten its retry key.
      await k.deps.db
        .updateTable('delivery')
        .set({ send_after: sql<Date>`now()`, sent_at: sql<Date>`now() - interval '8 days'` })
        .where('id', '=', first!)
        .where('status', '=', 'pending')
        .execute()
      await k.deps.db
        .updateTable('delivery')
        .set({ sent_at: sql<Date>`now() - interval '8 days'` })
        .where('id', '=', second!)
        .execute()
      for (const entry of k.line.context.state.retryKeys.values()) entry.at -= 8 * 24 * 3600_000
      await send(first!)

      expect((await deliveryRow(k, first!)).status).toBe('sent')
      expect(received('first')).toHaveLength(1)
    } finally {
      await queue.resume()
    }
  })

  // `kizuna deliveries retry` puts back a push that failed after 5xx answers (LINE may have taken
  // it) with its stored request. Held up by the cap, it would go after LINE forgot its key.
  it('a requeued push that may have reached LINE is not held up by the cap', async () => {
    const f = await newFriend(k)
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    const queue = k.deps.queues.byName.delivery
    const sendIds = sendJob(k)
    const send = (id: string) => sendIds([id])
    const received = (name: string) =>
      k.line.inbox(f.userId).filter((m) => String(m.message.altText).startsWith(name))
    await queue.pause() // this test plays the workers
    try {
      const [first] = await scheduleDeliveries(k.deps, [
        { ...campaign(f, { displayName: 'first' }), kind },
      ])
      await send(first!)
      // LINE took it, but every answer was lost until the job gave up.
      const [push] = pushesTo(k, f.userId)
      await k.deps.db
        .updateTable('delivery')
        .set({
          status: 'failed',
          sent_at: null,
          last_error: 'LINE 500: Internal server error',
          push_body: JSON.stringify(push!.body),
        })
        .where('id', '=', first!)
        .execute()
      const [second] = await scheduleDeliveries(k.deps, [campaign(f, { displayName: 'second' })])
      // The week's cap (1) is full: the failed push may have reached them (it did).
      await send(second!)
      await requeueDeliveries(k.deps.db, { status: 'failed', kind })

      await send(first!)

      const row = await deliveryRow(k, first!)
      expect(row.status).toBe('sent') // LINE answered 409: it had it
      expect(received('first')).toHaveLength(1)
      expect(received('second')).toHaveLength(0)
      expect((await deliveryRow(k, second!)).status).toBe('pending')
    } finally {
      await queue.resume()
    }
  })
})

describe('the sweeper and a campaign backlog', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '' })
  })
  afterAll(async () => {
    await k.stopAll()
  })

  it('leaves deliveries alone while jobs wait in the queue, and finds lost ones once it is idle', async () => {
    const f = await newFriend(k)
    // A delivery whose job Redis lost: due, pending, untouched for a minute, nothing queued.
    const [lost] = await k.deps.db
      .insertInto('delivery')
      .values({
        dedupe_key: `lost:${f.customerId}`,
        kind: 'campaign',
        category: 'marketing',
        customer_id: f.customerId,
        template_id: 'campaign-sample',
        vars: JSON.stringify({ ...SAMPLE, displayName: f.displayName }),
        updated_at: sql<Date>`now() - interval '1 minute'`,
      })
      .returning('id')
      .execute()
    const queue = k.deps.queues.byName.delivery
    await queue.pause()
    try {
      await queue.add('messaging.send-deliveries', { deliveryIds: [crypto.randomUUID()] })
      expect((await sweepOnce(k.deps, 0)).deliveries).toBe(0)
    } finally {
      await queue.resume()
    }
    await eventually(async () => expect(await queue.getWaitingCount()).toBe(0))
    expect((await sweepOnce(k.deps, 0)).deliveries).toBe(1)
    await waitForStatus(k, [lost!.id], 'sent')
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })
})
