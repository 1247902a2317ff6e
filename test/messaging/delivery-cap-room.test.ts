import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  campaign,
  campaignInbox,
  deliveryRows,
  type Friend,
  newFriend,
  sendJob,
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
    const rows = await insertDeliveries(
      k.deps.db,
      days.map(() => campaign(f)),
    )
    const at: Date[] = []
    for (const [i, { id }] of rows.entries()) {
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

  /**
   * One job sending `count` new campaigns to `f`, after marketing sends these many days ago: all
   * but one go, and that one waits. Returns when the earlier sends went, the waiting row, and when
   * the job started.
   */
  async function oneJob(f: Friend, daysAgo: number[], count: number) {
    const earlier = await sentDaysAgo(f, daysAgo)
    // Written, not queued: the test runs the job.
    const ids = (
      await insertDeliveries(
        k.deps.db,
        Array.from({ length: count }, (_, n) => distinct(f, n + 1)),
      )
    ).map((r) => r.id)
    const started = Date.now()
    await sendJob(k)(ids)
    const rows = await deliveryRows(k, ids)
    expect(rows.filter((r) => r.status === 'sent')).toHaveLength(count - 1)
    const waiting = rows.filter((r) => r.status === 'pending')
    expect(waiting).toHaveLength(1)
    expect(campaignInbox(k, f.userId)).toHaveLength(count - 1)
    return { earlier, waiting: waiting[0]!, started }
  }

  // Cap 3, sends 6 and 5 days ago: the job's first delivery takes the last room, and the second
  // waits until the 6-day-old send ages out, tomorrow (it waited a week from now).
  it('one of the job’s own sends filling the week: the other waits until the oldest counted send is a week old', async () => {
    const { earlier, waiting } = await oneJob(await newFriend(k), [6, 5], 2)
    const roomAt = earlier[0]!.getTime() + WEEK_MS
    expect(Math.abs(waiting.send_after.getTime() - roomAt)).toBeLessThanOrEqual(1_000)
  })

  // Cap 3, one send 2 days ago: the job sends two, and the third waits until the 2-day-old send
  // ages out, in 5 days (it waited a week from now).
  it('two of the job’s own sends filling the week: the third waits for the earlier send', async () => {
    const { earlier, waiting } = await oneJob(await newFriend(k), [2], 3)
    const roomAt = earlier[0]!.getTime() + WEEK_MS
    expect(Math.abs(waiting.send_after.getTime() - roomAt)).toBeLessThanOrEqual(1_000)
  })

  // Cap 3, nothing sent this week: the job sends three, and the fourth waits a week from now (the
  // cap-th most recent send is one of the job's own).
  it('the job’s own sends alone filling the week: a week from now', async () => {
    const { waiting, started } = await oneJob(await newFriend(k), [], 4)
    expect(waiting.send_after.getTime()).toBeGreaterThanOrEqual(started + WEEK_MS)
    expect(waiting.send_after.getTime()).toBeLessThanOrEqual(Date.now() + WEEK_MS)
  })
})
