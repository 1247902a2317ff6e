import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { claimOf } from '../../src/messaging/delivery-claim.repo.ts'
import { recordOutcomes } from '../../src/messaging/delivery-outcomes.repo.ts'
import { requeueDeliveries } from '../../src/messaging/delivery-requeue.repo.ts'
import { claimDeliveriesWithMarketingCounts } from '../../src/messaging/marketing-cap.repo.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import {
  campaign,
  campaignInbox,
  deliveryRow,
  deliveryRows,
  newFriend,
  playingWorkers,
  pushesTo,
  sendJob,
  WEEK_MS,
  waitForStatus,
} from './support.ts'

// Quiet hours and the sweeper's backlog rules: delivery-rules.test.ts.

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

  /** Pending again within a minute: the cap is decided once another job's send is. */
  async function expectRecheckedSoon(id: string) {
    const row = await deliveryRow(k, id)
    expect(row).toMatchObject({ status: 'pending', skip_reason: null })
    expect(row.send_after.getTime()).toBeGreaterThan(Date.now())
    expect(row.send_after.getTime()).toBeLessThanOrEqual(Date.now() + 60_000)
  }

  /** The delivery's wait is over (as when its delayed job comes). */
  const dueNow = (id: string) =>
    k.deps.db
      .updateTable('delivery')
      .set({ send_after: sql<Date>`now()` })
      .where('id', '=', id)
      .execute()

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
  // the claim counts the customer's marketing sends under a lock per customer, and one that
  // claims while another job's send is still being decided waits a few seconds for it (a round
  // or two of UNDER_WAY_RECHECK_MS) before it waits its week.
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
    }, 25_000)
    expect(rows.filter((r) => r.status === 'sent')).toHaveLength(1)
  })

  // Another job's row in `sending` may still send nothing (the person opted out, no channel is
  // left, quiet hours began): until its request or email may have gone (its push stored, its
  // email marked as trying), it holds no room for good. Counted as a send, a delivery its sender
  // said to skip over the cap was skipped though the person got nothing.
  it('a job that also names a delivery another job is sending waits for that send', async () => {
    const f = await newFriend(k)
    await playingWorkers(k, async (send) => {
      const [a] = await scheduleDeliveries(k.deps, [campaign(f)])
      const [b] = await scheduleDeliveries(k.deps, [campaign(f)])
      // One job has claimed `a` and is deciding its send...
      const first = await claimDeliveriesWithMarketingCounts(k.deps.db, [a!], 1)
      expect(first.rows.map((r) => r.id)).toEqual([a])
      // ...when another job names both (the sweeper regroups unfinished rows as it finds them):
      // `b` waits a moment for `a`'s send, neither sent nor deferred for a week.
      await send([a!, b!])
      await expectRecheckedSoon(b!)

      // `a`'s job stores its push before the call: it may reach the person, and `b` waits for
      // room until it is a week old.
      await k.deps.db
        .updateTable('delivery')
        .set({ line_first_call_at: sql<Date>`now()` })
        .where('id', '=', a!)
        .execute()
      await dueNow(b!)
      await send([b!])
      const later = await deliveryRow(k, b!)
      expect(later.status).toBe('pending')
      expect(later.send_after.getTime()).toBeGreaterThan(Date.now() + WEEK_MS / 2)
      expect(pushesTo(k, f.userId)).toHaveLength(0)
    })
  })

  it('a delivery to skip over the cap is not skipped for another job’s send that then sends nothing', async () => {
    const f = await newFriend(k)
    await playingWorkers(k, async (send) => {
      const [a] = await scheduleDeliveries(k.deps, [campaign(f)])
      const [b] = await scheduleDeliveries(k.deps, [campaign(f, { overCap: 'skip' })])
      const first = await claimDeliveriesWithMarketingCounts(k.deps.db, [a!], 1)
      await send([b!])
      await expectRecheckedSoon(b!)

      // `a`'s job sends nothing after all (the person opted out of marketing on LINE meanwhile).
      await recordOutcomes(
        k.deps.db,
        [{ id: a!, status: 'skipped', reason: 'no_marketing_consent_line' }],
        claimOf(first.rows),
      )
      await dueNow(b!)
      await send([b!])
      expect((await deliveryRow(k, b!)).status).toBe('sent')
      expect(pushesTo(k, f.userId)).toHaveLength(1)
    })
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
