import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { requeueDeliveries } from '../../src/messaging/delivery.repo.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  campaign,
  deliveryRows,
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

  // LINE refused the chunk (the monthly quota's 429) and took nothing under its key: requeued,
  // it is a new send like any other, and waits when the person's week is full.
  it('holds a requeued multicast chunk that LINE refused over the cap', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    const queue = k.deps.queues.byName.delivery
    const send = sendJob(k)
    await queue.pause() // this test plays the workers
    try {
      const kind = `campaign-${randomUUID().slice(0, 8)}`
      const ids = await scheduleDeliveries(
        k.deps,
        friends.map((f) => ({ ...campaign(f, { displayName: 'お客様' }), kind })),
      )
      quotaOnNextMulticast(k)
      await send(ids)
      for (const row of await deliveryRows(k, ids)) expect(row.status).toBe('quota_exceeded')

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
})
