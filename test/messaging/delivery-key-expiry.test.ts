import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { requeueDeliveries } from '../../src/messaging/delivery-requeue.repo.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  campaign,
  campaignInbox,
  deliveryRow,
  deliveryRows,
  type Friend,
  MULTICAST,
  metricValue,
  multicastsTo,
  newFriend,
  pushesTo,
  quotaOnNextMulticast,
  refuseNextPush,
  sendJob,
} from './support.ts'

const FAILED_ON_NO_CHANNEL = 'kizuna_deliveries_total{channel="none",status="failed"}'

/**
 * LINE honours a retry key for 24 hours from its first request (LINE-API.md §2.4): after that the
 * same key is a new request. Whatever brings a delivery back (a retry after a timeout, quiet hours,
 * the weekly cap, `kizuna deliveries retry`), it never goes again under a key that old if a request
 * under it may have reached LINE.
 */
describe('a retry key LINE may have forgotten', () => {
  let k: TestKizuna
  let send: (ids: string[]) => Promise<void>

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '' })
    const job = sendJob(k)
    send = async (ids) => {
      await job(ids)
    }
  })
  afterAll(async () => {
    await k.stopAll()
  })
  beforeEach(() => {
    k.line.clearFailures()
  })

  const intent = (f: Friend, kind: string, displayName?: string) => ({
    ...campaign(f, { category: 'transactional', ...(displayName ? { displayName } : {}) }),
    kind,
  })
  /** Runs `test` with the delivery queue paused: it plays the workers (friends are made first). */
  const playingWorkers = async (test: () => Promise<void>) => {
    const queue = k.deps.queues.byName.delivery
    await queue.pause()
    try {
      await test()
    } finally {
      await queue.resume()
    }
  }
  /** A day passes for these rows' first calls, and LINE forgets every retry key it holds. */
  const aDayLater = async (ids: string[]) => {
    await sql`update delivery
      set line_first_call_at = line_first_call_at - interval '25 hours'
      where id = any(${ids}::uuid[])`.execute(k.deps.db)
    for (const entry of k.line.context.state.retryKeys.values()) entry.at -= 25 * 3600_000
  }
  /** LINE took the request, but its answer was lost (a timeout): the row waits for a retry. */
  const answerLost = (id: string, pushBody: unknown) =>
    k.deps.db
      .updateTable('delivery')
      .set({
        status: 'pending',
        sent_at: null,
        last_error: 'The operation was aborted due to timeout',
        push_body: pushBody === null ? null : JSON.stringify(pushBody),
      })
      .where('id', '=', id)
      .execute()

  it('a push whose first request may have reached LINE over 23 hours ago is failed, not sent again', async () => {
    const f = await newFriend(k)
    await playingWorkers(async () => {
      const [id] = await scheduleDeliveries(k.deps, [intent(f, 'campaign')])
      await send([id!])
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
      const [push] = pushesTo(k, f.userId)
      await answerLost(id!, push!.body)
      await aDayLater([id!])
      const failedBefore = await metricValue(k, FAILED_ON_NO_CHANNEL)

      await send([id!])

      expect(pushesTo(k, f.userId)).toHaveLength(1)
      expect(campaignInbox(k, f.userId)).toHaveLength(1) // not twice
      const row = await deliveryRow(k, id!)
      expect(row.status).toBe('failed')
      expect(row.last_error).toMatch(/^retry key expired: .*over 23 hours ago/)
      expect(row.push_body).toBeNull() // it names the person, and no retry follows
      expect(await metricValue(k, FAILED_ON_NO_CHANNEL)).toBe(failedBefore + 1)
    })
  })

  it('a multicast chunk whose first request may have reached LINE over 23 hours ago does not go again', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    await playingWorkers(async () => {
      const ids = await scheduleDeliveries(
        k.deps,
        friends.map((f) => intent(f, 'campaign', 'お客様')),
      )
      await send(ids)
      for (const f of friends) expect(multicastsTo(k, f.userId)).toHaveLength(1)
      for (const id of ids) await answerLost(id, null)
      await aDayLater(ids)

      await send(ids)

      for (const f of friends) {
        expect(multicastsTo(k, f.userId)).toHaveLength(1)
        expect(campaignInbox(k, f.userId)).toHaveLength(1)
      }
      for (const row of await deliveryRows(k, ids)) {
        expect(row.status).toBe('failed')
        expect(row.last_error).toMatch(/^retry key expired/)
      }
    })
  })

  // A requeued failed push has no stored request, so the weekly cap may hold it up to a week
  // (quiet hours: until the window ends): sent then, under a key LINE forgot, it could arrive
  // twice. The check is made when it is about to go, whatever held it up.
  it('a requeued push held up until its key is a day old is failed when it is about to go', async () => {
    const f = await newFriend(k)
    await playingWorkers(async () => {
      const kind = `campaign-${randomUUID().slice(0, 8)}`
      const [id] = await scheduleDeliveries(k.deps, [intent(f, kind)])
      await send([id!])
      // Its answer was lost and every retry got a 500 until the job gave up.
      await k.deps.db
        .updateTable('delivery')
        .set({ status: 'failed', sent_at: null, last_error: 'LINE 500: Internal server error' })
        .where('id', '=', id!)
        .execute()
      expect(await requeueDeliveries(k.deps.db, { status: 'failed', kind })).toEqual({
        requeued: 1,
        keyExpired: 0,
      })
      // Deferred (as by the cap) until after LINE forgot the key.
      await aDayLater([id!])

      await send([id!])

      expect(pushesTo(k, f.userId)).toHaveLength(1)
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
      const row = await deliveryRow(k, id!)
      expect(row.status).toBe('failed')
      expect(row.last_error).toMatch(/^retry key expired/)
    })
  })

  it('a push LINE refused with a 400, requeued a day later, is sent (its key was never taken)', async () => {
    const f = await newFriend(k)
    await playingWorkers(async () => {
      const kind = `campaign-${randomUUID().slice(0, 8)}`
      const [id] = await scheduleDeliveries(k.deps, [intent(f, kind)])
      refuseNextPush(k)
      await send([id!])
      expect((await deliveryRow(k, id!)).status).toBe('failed')
      await aDayLater([id!])

      expect(await requeueDeliveries(k.deps.db, { status: 'failed', kind })).toEqual({
        requeued: 1,
        keyExpired: 0,
      })
      // The key's 24 hours start again with its next request.
      expect((await deliveryRow(k, id!)).line_first_call_at).toBeNull()
      await send([id!])

      const row = await deliveryRow(k, id!)
      expect(row.status).toBe('sent')
      expect(row.line_first_call_at!.getTime()).toBeGreaterThan(Date.now() - 60_000)
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
    })
  })

  it('a multicast chunk parked by the monthly quota goes again when requeued weeks later', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    await playingWorkers(async () => {
      const kind = `campaign-${randomUUID().slice(0, 8)}`
      const ids = await scheduleDeliveries(
        k.deps,
        friends.map((f) => intent(f, kind, 'お客様')),
      )
      quotaOnNextMulticast(k)
      await send(ids)
      for (const row of await deliveryRows(k, ids)) expect(row.status).toBe('quota_exceeded')
      await sql`update delivery set line_first_call_at = line_first_call_at - interval '20 days'
      where id = any(${ids}::uuid[])`.execute(k.deps.db)

      expect(await requeueDeliveries(k.deps.db, { status: 'quota_exceeded', kind })).toEqual({
        requeued: 2,
        keyExpired: 0,
      })
      // They go again (in a new chunk, under its key); the first request of its 24 hours is noted.
      k.line.failNext({ method: 'POST', path: MULTICAST, status: 500, count: 1 })
      await expect(send(ids)).rejects.toThrow(/failed for now/)
      const rows = await deliveryRows(k, ids)
      for (const row of rows) {
        expect(row.status).toBe('pending')
        expect(row.line_first_call_at!.getTime()).toBeGreaterThan(Date.now() - 60_000)
      }
      await send(ids)

      for (const row of await deliveryRows(k, ids)) expect(row.status).toBe('sent')
      for (const f of friends) {
        expect(multicastsTo(k, f.userId).map((m) => m.status)).toEqual([429, 500, 200])
        expect(campaignInbox(k, f.userId)).toHaveLength(1)
      }
    })
  })
})
