import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { requeueDeliveries } from '../../src/messaging/delivery-requeue.repo.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  campaign,
  deliveryRows,
  type Friend,
  multicastsTo,
  newFriend,
  quotaOnNextMulticast,
  sendJob,
  WEEK_MS,
} from './support.ts'

describe('weekly marketing cap after `kizuna deliveries retry`', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '1' })
  })
  afterAll(async () => {
    await k.stopAll()
  })

  /**
   * A campaign chunk to `friends` that LINE refused (the monthly quota's 429), parked as
   * quota_exceeded. The caller plays the workers: the delivery queue is paused.
   */
  async function parkedChunk(
    send: ReturnType<typeof sendJob>,
    friends: Friend[],
    seed: { overCap?: 'skip' } = {},
  ) {
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => ({ ...campaign(f, { displayName: 'お客様', ...seed }), kind })),
    )
    quotaOnNextMulticast(k)
    await send(ids)
    for (const row of await deliveryRows(k, ids)) expect(row.status).toBe('quota_exceeded')
    return { ids, kind }
  }

  /** The chunk's message as `f` received it. */
  const chunkMessages = (f: Friend) =>
    k.line.inbox(f.userId).filter((m) => String(m.message.altText).startsWith('お客様 様へ'))

  // LINE refused the chunk (the monthly quota's 429) and took nothing under its key: requeued,
  // it is a new send like any other, and waits when the person's week is full.
  it('holds a requeued multicast chunk that LINE refused over the cap', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    const queue = k.deps.queues.byName.delivery
    const send = sendJob(k)
    await queue.pause() // this test plays the workers
    try {
      const { ids, kind } = await parkedChunk(send, friends)

      // Each person gets another marketing message: their week is full.
      const others = await scheduleDeliveries(
        k.deps,
        friends.map((f) => campaign(f)),
      )
      await send(others)
      for (const row of await deliveryRows(k, others)) expect(row.status).toBe('sent')

      expect(await requeueDeliveries(k.deps.db, { status: 'quota_exceeded', kind })).toEqual({
        requeued: 2,
        keyExpired: 0,
      })
      const before = multicastsTo(k, friends[0]!.userId).length
      await send(ids)
      for (const row of await deliveryRows(k, ids)) {
        expect(row.status).toBe('pending')
        expect(row.send_after.getTime()).toBeGreaterThan(Date.now() + WEEK_MS / 2)
      }
      expect(multicastsTo(k, friends[0]!.userId)).toHaveLength(before)
    } finally {
      await queue.resume()
    }
  })

  it('a requeued chunk leaves out whoever the cap skips', async () => {
    const [held, free] = [await newFriend(k), await newFriend(k)] as [Friend, Friend]
    const queue = k.deps.queues.byName.delivery
    const send = sendJob(k)
    await queue.pause() // this test plays the workers
    try {
      const { ids, kind } = await parkedChunk(send, [held, free], { overCap: 'skip' })
      const [other] = await scheduleDeliveries(k.deps, [campaign(held)])
      await send([other!])

      await requeueDeliveries(k.deps.db, { status: 'quota_exceeded', kind })
      await send(ids)
      const [heldRow, freeRow] = await deliveryRows(k, ids)
      expect(freeRow!.status).toBe('sent')
      expect(heldRow).toMatchObject({ status: 'skipped', skip_reason: 'weekly_cap' })
      expect(chunkMessages(free)).toHaveLength(1)
      expect(chunkMessages(held)).toHaveLength(0)
    } finally {
      await queue.resume()
    }
  })

  // The chunk goes to the one with room, and with it to the one held by the cap (their uid is in
  // the stored request): LINE took the key then, for both. When the held one comes up again days
  // later, that key is older than LINE keeps keys, and the chunk must not go again (to both).
  it('a requeued chunk that went while one of its people waited for room never reaches anyone twice', async () => {
    const [held, free] = [await newFriend(k), await newFriend(k)] as [Friend, Friend]
    const queue = k.deps.queues.byName.delivery
    const send = sendJob(k)
    await queue.pause() // this test plays the workers
    try {
      const { ids, kind } = await parkedChunk(send, [held, free])
      // One of the two gets another marketing message: their week is full.
      const [other] = await scheduleDeliveries(k.deps, [campaign(held)])
      await send([other!])

      await requeueDeliveries(k.deps.db, { status: 'quota_exceeded', kind })
      await send(ids)
      const [heldRow, freeRow] = await deliveryRows(k, ids)
      expect(freeRow!.status).toBe('sent')
      expect(heldRow!.status).toBe('pending')
      expect(chunkMessages(free)).toHaveLength(1)

      // Two days on: the held one's week has room, and LINE has forgotten the chunk's key.
      await sql`update delivery set line_first_call_at = line_first_call_at - interval '2 days'
        where id = any(${ids}::uuid[])`.execute(k.deps.db)
      await sql`update delivery set sent_at = sent_at - interval '8 days'
        where id = ${other!}`.execute(k.deps.db)
      await sql`update delivery set send_after = now() where id = ${heldRow!.id}`.execute(k.deps.db)
      for (const entry of k.line.context.state.retryKeys.values()) entry.at -= 48 * 3600_000
      await send([heldRow!.id])

      expect(chunkMessages(free)).toHaveLength(1)
      expect(chunkMessages(held).length).toBeLessThanOrEqual(1)
    } finally {
      await queue.resume()
    }
  })
})
