import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jobIds } from '../../src/jobs.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import {
  campaign,
  campaignInbox,
  deliveryRow,
  deliveryRows,
  finishedJob,
  multicastsTo,
  newFriend,
  pushesTo,
  SAMPLE,
  tokyoHhMm,
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

  // A claim that only defers its rows still counts as an attempt: they go out afterwards as
  // they would have, one multicast for the same content (nothing went to LINE under a key).
  it('a campaign deferred by quiet hours goes out by multicast once they are over', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => campaign(f, { displayName: 'お客様' })),
    )
    await eventually(async () => {
      const rows = await deliveryRows(k, ids)
      expect(rows.map((r) => [r.status, r.attempts])).toEqual([
        ['pending', 1],
        ['pending', 1],
      ])
      expect(rows.every((r) => r.send_after.getTime() > Date.now())).toBe(true)
    })
    await sendDueAfterWindow(k, ids)

    for (const f of friends) {
      expect(pushesTo(k, f.userId)).toHaveLength(0)
      expect(multicastsTo(k, f.userId)).toHaveLength(1)
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
    }
    const [multicast] = multicastsTo(k, friends[0]!.userId)
    expect((multicast!.body as { to: string[] }).to.toSorted()).toEqual(
      friends.map((f) => f.userId).toSorted(),
    )
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
