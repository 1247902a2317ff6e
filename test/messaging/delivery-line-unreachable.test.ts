import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  campaign,
  campaignInbox,
  deliveryRow,
  deliveryRows,
  dueNow,
  multicastsTo,
  newFriend,
  playingWorkers,
  pushesTo,
  sendJob,
  sendTools,
  welcomeId,
  withLineUnreachable,
} from './support.ts'

/**
 * LINE out of reach as the call connects (refused, a host that does not resolve): the request
 * never left, so LINE got nothing under its key and the delivery is as if never tried. It waits
 * for a retry as a new send (no push kept, no first call noted), and goes out once LINE is back;
 * a reply is tried again while its token is fresh, not failed as of unknown outcome.
 */
describe('deliveries while LINE is unreachable', () => {
  let k: TestKizuna
  let down: { deps: Deps; close(): Promise<void> }

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '0' })
    down = await withLineUnreachable(k.deps)
  })
  afterAll(async () => {
    await down?.close()
    await k?.stopAll()
  })
  beforeEach(() => {
    k.line.clearFailures()
  })

  /** A send job whose LINE calls are refused as they connect. */
  const sendWhileDown = (ids: string[]) => sendJob(k, sendTools(k), down.deps)(ids)

  it('a push that never reached LINE waits with its key unused, then goes out once', async () => {
    const f = await newFriend(k)
    await playingWorkers(k, async (send) => {
      const [id] = await scheduleDeliveries(k.deps, [campaign(f)])
      await expect(sendWhileDown([id!])).rejects.toThrow(/1 of 1 deliveries failed for now/)

      const row = await deliveryRow(k, id!)
      expect(row.status).toBe('pending')
      expect(row.last_error).toMatch(/ECONNREFUSED/)
      // LINE took nothing under the key: no first call to count or expire, no push to repeat.
      expect(row.line_first_call_at).toBeNull()
      expect(row.push_body).toBeNull()
      expect(pushesTo(k, f.userId)).toHaveLength(0)

      await dueNow(k, [id!])
      await send([id!])
      const sent = await deliveryRow(k, id!)
      expect([sent.status, sent.attempts]).toEqual(['sent', 2])
      const pushes = pushesTo(k, f.userId)
      expect(pushes.map((p) => [p.status, p.headers['x-line-retry-key']])).toEqual([
        [200, row.line_retry_key],
      ])
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
    })
  })

  it('a new multicast chunk that never reached LINE is given up; its deliveries go in a new one', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    await playingWorkers(k, async (send) => {
      const ids = await scheduleDeliveries(
        k.deps,
        friends.map((f) => campaign(f, { displayName: 'お客様' })),
      )
      await expect(sendWhileDown(ids)).rejects.toThrow(/2 of 2 deliveries failed for now/)
      const waiting = await deliveryRows(k, ids)
      for (const row of waiting) {
        expect(row.status).toBe('pending')
        expect(row.line_first_call_at).toBeNull()
        expect(row.multicast_request_id).not.toBeNull()
      }

      await dueNow(k, ids)
      await send(ids)
      const sent = await deliveryRows(k, ids)
      expect(sent.map((r) => r.status)).toEqual(['sent', 'sent'])
      expect(new Set(sent.map((r) => r.multicast_request_id)).size).toBe(1)
      expect(sent[0]!.multicast_request_id).not.toBe(waiting[0]!.multicast_request_id)
      for (const f of friends) {
        expect(multicastsTo(k, f.userId).map((m) => m.status)).toEqual([200])
        expect(campaignInbox(k, f.userId)).toHaveLength(1)
      }
    })
  })

  it('a reply that never reached LINE is tried again while its token is fresh, not failed', async () => {
    const user = k.line.users.create()
    await playingWorkers(k, async (send) => {
      await k.line.users.follow(user.userId)
      const id = await welcomeId(k, user.userId)
      await expect(sendWhileDown([id])).rejects.toThrow(/1 of 1 deliveries failed for now/)

      const row = await deliveryRow(k, id)
      expect(row.status).toBe('pending')
      expect(row.last_error).toMatch(/ECONNREFUSED/)
      expect(row.reply_state).toBeNull()
      expect(k.line.inbox(user.userId)).toHaveLength(0)

      await dueNow(k, [id])
      await send([id])
      expect((await deliveryRow(k, id)).status).toBe('sent')
      // A reply, free: the push would have spent the month's quota.
      expect(k.line.inbox(user.userId).map((m) => m.endpoint)).toEqual(['reply'])
      expect(pushesTo(k, user.userId)).toHaveLength(0)
    })
  })
})
