import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  campaign,
  campaignInbox,
  deliveryRows,
  type Friend,
  newFriend,
  playingWorkers,
  WEEK_MS,
} from './support.ts'

const DAY_MS = 24 * 60 * 60 * 1000

/** Campaigns to one person differing in content (identical ones would share a multicast). */
const distinct = (f: Friend, n: number) => campaign(f, { displayName: `${f.displayName} ${n}` })

/**
 * When the weekly cap is reached, a delivery waits until the cap-th most recent send turns a week
 * old, counting the sends of the week before the job and those the job itself has just made.
 */
describe('the weekly cap’s room time', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '3' })
  })
  afterAll(async () => {
    await k?.stopAll()
  })

  /** Marketing sends to `f` that reached them these many days ago: their sent_at. */
  async function sentDaysAgo(f: Friend, days: number[]): Promise<Date[]> {
    const ids = await scheduleDeliveries(
      k.deps,
      days.map(() => campaign(f)),
    )
    const at: Date[] = []
    for (const [i, id] of ids.entries()) {
      const row = await k.deps.db
        .updateTable('delivery')
        .set({ status: 'sent', channel: 'line', sent_at: new Date(Date.now() - days[i]! * DAY_MS) })
        .where('id', '=', id)
        .returning('sent_at')
        .executeTakeFirstOrThrow()
      at.push(row.sent_at!)
    }
    return at
  }

  // Cap 3, sends 6 and 5 days ago: the job's first delivery takes the last room, and the second
  // waits until the 6-day-old send ages out, tomorrow (it waited a week from now).
  it('one of the job’s own sends filling the week: the other waits until the oldest counted send is a week old', async () => {
    const f = await newFriend(k)
    await playingWorkers(k, async (send) => {
      const [sixDaysAgo] = await sentDaysAgo(f, [6, 5])
      const ids = await scheduleDeliveries(k.deps, [distinct(f, 1), distinct(f, 2)])

      await send(ids)

      const rows = await deliveryRows(k, ids)
      expect(rows.map((r) => r.status).sort()).toEqual(['pending', 'sent'])
      const waiting = rows.find((r) => r.status === 'pending')!
      const roomAt = sixDaysAgo!.getTime() + WEEK_MS
      expect(Math.abs(waiting.send_after.getTime() - roomAt)).toBeLessThanOrEqual(1_000)
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
    })
  })

  // Cap 3, one send 2 days ago: the job sends two, and the third waits until the 2-day-old send
  // ages out, in 5 days (it waited a week from now).
  it('two of the job’s own sends filling the week: the third waits for the earlier send', async () => {
    const f = await newFriend(k)
    await playingWorkers(k, async (send) => {
      const [twoDaysAgo] = await sentDaysAgo(f, [2])
      const ids = await scheduleDeliveries(
        k.deps,
        [1, 2, 3].map((n) => distinct(f, n)),
      )

      await send(ids)

      const rows = await deliveryRows(k, ids)
      expect(rows.map((r) => r.status).sort()).toEqual(['pending', 'sent', 'sent'])
      const waiting = rows.find((r) => r.status === 'pending')!
      const roomAt = twoDaysAgo!.getTime() + WEEK_MS
      expect(Math.abs(waiting.send_after.getTime() - roomAt)).toBeLessThanOrEqual(1_000)
      expect(campaignInbox(k, f.userId)).toHaveLength(2)
    })
  })

  // Cap 3, nothing sent this week: the job sends three, and the fourth waits a week from now (the
  // cap-th most recent send is one of the job's own).
  it('the job’s own sends alone filling the week: a week from now', async () => {
    const f = await newFriend(k)
    await playingWorkers(k, async (send) => {
      const ids = await scheduleDeliveries(
        k.deps,
        [1, 2, 3, 4].map((n) => distinct(f, n)),
      )

      const before = Date.now()
      await send(ids)

      const rows = await deliveryRows(k, ids)
      expect(rows.map((r) => r.status).sort()).toEqual(['pending', 'sent', 'sent', 'sent'])
      const waiting = rows.find((r) => r.status === 'pending')!
      expect(waiting.send_after.getTime()).toBeGreaterThanOrEqual(before + WEEK_MS)
      expect(waiting.send_after.getTime()).toBeLessThanOrEqual(Date.now() + WEEK_MS)
      expect(campaignInbox(k, f.userId)).toHaveLength(3)
    })
  })
})
