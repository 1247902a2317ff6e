import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setConsent } from '../../src/consent/consent.service.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { requeueDeliveries } from '../../src/messaging/delivery-requeue.repo.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import {
  campaign,
  deliveryRows,
  type Friend,
  MULTICAST,
  newFriend,
  quotaOnNextMulticast,
  sendJob,
} from './support.ts'

/**
 * A chunk LINE refused (the monthly quota's 429), requeued with `kizuna deliveries retry`: the
 * sweeper puts its deliveries into jobs of 100 in no set order, so its rows come up in several
 * jobs. Whoever may not get it when their own row comes up must not get it with the others'.
 */
describe('a multicast chunk requeued after LINE refused it, sent in several jobs', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '1' })
  })
  afterAll(async () => {
    await k.stopAll()
  })

  const chunkMessages = (f: Friend) =>
    k.line.inbox(f.userId).filter((m) => String(m.message.altText).startsWith('お客様 様へ'))
  const multicastsSince = (n: number) => k.line.requestsTo('POST', MULTICAST).slice(n)

  /** Schedules one chunk for these friends, parks it on the quota's 429 and requeues it. */
  async function parkedAndRequeued(friends: Friend[], before: () => Promise<void>) {
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => ({ ...campaign(f, { displayName: 'お客様' }), kind })),
    )
    quotaOnNextMulticast(k)
    await sendJob(k)(ids)
    for (const row of await deliveryRows(k, ids)) expect(row.status).toBe('quota_exceeded')
    await before()
    expect(await requeueDeliveries(k.deps.db, { status: 'quota_exceeded', kind })).toMatchObject({
      requeued: friends.length,
    })
    return ids
  }

  it('never reaches someone who opted out, from a job that does not hold their delivery', async () => {
    const [optsOut, b, c] = [await newFriend(k), await newFriend(k), await newFriend(k)] as [
      Friend,
      Friend,
      Friend,
    ]
    const queue = k.deps.queues.byName.delivery
    const send = sendJob(k)
    await queue.pause() // this test plays the workers
    try {
      const ids = await parkedAndRequeued([optsOut, b, c], async () => {
        await setConsent(k.deps.db, optsOut.customerId, {
          category: 'marketing',
          channel: 'line',
          granted: false,
          source: 'line-postback',
        })
      })
      const from = k.line.requestsTo('POST', MULTICAST).length
      await send([ids[1]!, ids[2]!])
      await send([ids[0]!])

      const [optedOut, ...others] = await deliveryRows(k, ids)
      expect(optedOut!.status).toBe('skipped')
      for (const row of others) expect(row.status).toBe('sent')
      for (const m of multicastsSince(from)) {
        expect((m.body as { to: string[] }).to).not.toContain(optsOut.userId)
      }
      expect(chunkMessages(optsOut)).toHaveLength(0)
      expect(chunkMessages(b)).toHaveLength(1)
      expect(chunkMessages(c)).toHaveLength(1)
      expectNoRejectedRequests(k.line, { exceptRichMenus: true })
    } finally {
      await queue.resume()
    }
  })

  it('two jobs holding parts of it at once send each person one message', async () => {
    const friends = [await newFriend(k), await newFriend(k), await newFriend(k)]
    const queue = k.deps.queues.byName.delivery
    const send = sendJob(k)
    await queue.pause() // this test plays the workers
    try {
      const ids = await parkedAndRequeued(friends, async () => {})
      await Promise.all([send([ids[0]!, ids[1]!]), send([ids[2]!])])

      for (const row of await deliveryRows(k, ids)) expect(row.status).toBe('sent')
      for (const f of friends) expect(chunkMessages(f)).toHaveLength(1)
      expectNoRejectedRequests(k.line, { exceptRichMenus: true })
    } finally {
      await queue.resume()
    }
  })

  it('reaches one waiting for room in the weekly cap once, when their room comes', async () => {
    const [held, free] = [await newFriend(k), await newFriend(k)] as [Friend, Friend]
    const queue = k.deps.queues.byName.delivery
    const send = sendJob(k)
    await queue.pause() // this test plays the workers
    try {
      let other = ''
      const ids = await parkedAndRequeued([held, free], async () => {
        // One of the two gets another marketing message: their week is full.
        ;[other] = (await scheduleDeliveries(k.deps, [campaign(held)])) as [string]
        await send([other])
      })
      const [heldId, freeId] = ids as [string, string]
      await send([freeId])
      await send([heldId])
      let [heldRow, freeRow] = await deliveryRows(k, ids)
      expect(freeRow!.status).toBe('sent')
      expect(heldRow!.status).toBe('pending')
      expect(chunkMessages(free)).toHaveLength(1)
      expect(chunkMessages(held)).toHaveLength(0)

      // Two days on: the held one's week has room.
      await sql`update delivery set sent_at = sent_at - interval '8 days'
        where id = ${other}`.execute(k.deps.db)
      await sql`update delivery set send_after = now() where id = ${heldId}`.execute(k.deps.db)
      for (const entry of k.line.context.state.retryKeys.values()) entry.at -= 48 * 3600_000
      await send([heldId])
      ;[heldRow, freeRow] = await deliveryRows(k, ids)
      expect(heldRow!.status).toBe('sent')
      expect(chunkMessages(held)).toHaveLength(1)
      expect(chunkMessages(free)).toHaveLength(1)
      expectNoRejectedRequests(k.line, { exceptRichMenus: true })
    } finally {
      await queue.resume()
    }
  })
})
