import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSendDeliveries } from '../../src/messaging/delivery.jobs.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { requeueDeliveries } from '../../src/messaging/delivery-requeue.repo.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import {
  blockAccount,
  campaign,
  deliveryRows,
  type Friend,
  MULTICAST,
  multicastsTo,
  newFriend,
  optOutOfLineMarketing,
  playingWorkers,
  pushesTo,
  type sendJob,
  sendTools,
} from './support.ts'

/**
 * A multicast chunk whose call got a 500 may have reached LINE (LINE-API.md §2.4): it goes again
 * only as first sent, under its key. Its rows come up in several jobs (each deferred row gets a
 * job of its own, the sweeper spreads rows over jobs of 100): a job holding some of them must not
 * send it to a person whose delivery was ruled out meanwhile.
 */
describe('a multicast chunk that may have reached LINE, sent again', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '' })
  })
  afterAll(async () => {
    await k.stopAll()
  })

  const chunkMessages = (f: Friend) =>
    k.line.inbox(f.userId).filter((m) => String(m.message.altText).startsWith('お客様 様へ'))
  const multicastsSince = (n: number) => k.line.requestsTo('POST', MULTICAST).slice(n)
  const optOut = (f: Friend) => optOutOfLineMarketing(k, f.customerId)

  /** One campaign chunk to these friends whose multicast got a 500: every row waits to retry. */
  async function chunkAfter500(send: ReturnType<typeof sendJob>, friends: Friend[], kind: string) {
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => ({ ...campaign(f, { displayName: 'お客様' }), kind })),
    )
    k.line.failNext({ method: 'POST', path: MULTICAST, status: 500, count: 1 })
    const error = await send(ids).catch((e: Error) => e)
    expect(error).toMatchObject({ message: expect.stringMatching(/failed for now/) })
    const rows = await deliveryRows(k, ids)
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => 'pending'))
    expect(new Set(rows.map((r) => r.multicast_request_id)).size).toBe(1)
    /** The try's error: as the worker hands it to onFinalFailure when it was the last. */
    return { ids, error: error as Error }
  }

  it('never reaches someone who opted out, from a job holding only another’s delivery', async () => {
    const [stays, optsOut] = [await newFriend(k), await newFriend(k)] as [Friend, Friend]
    await playingWorkers(k, async (send) => {
      const [staysId, optsOutId] = (await chunkAfter500(send, [stays, optsOut], 'campaign'))
        .ids as [string, string]
      const first = k.line.requestsTo('POST', MULTICAST).at(-1)!
      await optOut(optsOut)
      const from = k.line.requestsTo('POST', MULTICAST).length
      await send([staysId])
      await send([optsOutId])

      for (const m of multicastsSince(from)) {
        expect((m.body as { to: string[] }).to).not.toContain(optsOut.userId)
        // Never a changed request under the key LINE may hold (LINE-API.md §9).
        expect(m.headers['x-line-retry-key']).not.toBe(first.headers['x-line-retry-key'])
      }
      expect(chunkMessages(optsOut)).toHaveLength(0)
      // Nor a copy under another key: LINE may have delivered the chunk to them.
      expect(pushesTo(k, stays.userId)).toHaveLength(0)
      const [kept, optedOut] = await deliveryRows(k, [staysId, optsOutId])
      expect(kept!.status).toBe('failed')
      expect(kept!.last_error).toMatch(/multicast chunk/)
      expect(optedOut!.status).toBe('skipped')
      expectNoRejectedRequests(k.line)
    })
  })

  it('never reaches someone who opted out after the chunk was failed and requeued', async () => {
    const [stays, optsOut] = [await newFriend(k), await newFriend(k)] as [Friend, Friend]
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    await playingWorkers(k, async (send) => {
      const { ids, error } = await chunkAfter500(send, [stays, optsOut], kind)
      // That was the job's last try: both are failed, keeping their chunk and its first call.
      await createSendDeliveries(sendTools(k)).onFinalFailure?.(k.deps, { deliveryIds: ids }, error)
      await optOut(optsOut)
      expect(await requeueDeliveries(k.deps.db, { status: 'failed', kind })).toMatchObject({
        requeued: 2,
      })
      const from = k.line.requestsTo('POST', MULTICAST).length
      await send([ids[0]!])

      expect(multicastsSince(from)).toEqual([])
      expect(multicastsTo(k, optsOut.userId)).toHaveLength(1) // the first, answered 500
      expect(chunkMessages(optsOut)).toHaveLength(0)
      expect((await deliveryRows(k, [ids[0]!]))[0]!.status).toBe('failed')
    })
  })

  it('goes again unchanged from a job holding part of it while the others may still get it', async () => {
    const friends = [await newFriend(k), await newFriend(k), await newFriend(k)]
    await playingWorkers(k, async (send) => {
      const { ids } = await chunkAfter500(send, friends, 'campaign')
      const first = k.line.requestsTo('POST', MULTICAST).at(-1)!
      await send([ids[0]!])
      await send([ids[1]!, ids[2]!])

      const retries = multicastsSince(k.line.requestsTo('POST', MULTICAST).indexOf(first) + 1)
      expect(retries.map((r) => r.status)).toEqual([200, 409])
      for (const retry of retries) {
        expect(retry.headers['x-line-retry-key']).toBe(first.headers['x-line-retry-key'])
        expect(retry.body).toEqual(first.body)
      }
      for (const row of await deliveryRows(k, ids)) expect(row.status).toBe('sent')
      for (const f of friends) expect(chunkMessages(f)).toHaveLength(1)
    })
  })

  it('goes again unchanged with someone who blocked the account since (LINE drops theirs)', async () => {
    const [stays, blocks] = [await newFriend(k), await newFriend(k)] as [Friend, Friend]
    await playingWorkers(k, async (send) => {
      const { ids } = await chunkAfter500(send, [stays, blocks], 'campaign')
      const first = k.line.requestsTo('POST', MULTICAST).at(-1)!
      await blockAccount(k, blocks.userId)
      await send(ids)

      const [retry] = multicastsSince(k.line.requestsTo('POST', MULTICAST).indexOf(first) + 1)
      expect(retry!.body).toEqual(first.body)
      const [sent, blocked] = await deliveryRows(k, ids)
      expect(sent!.status).toBe('sent')
      expect(blocked!.status).toBe('skipped')
      expect(blocked!.skip_reason).toContain('line_blocked')
      expect(chunkMessages(stays)).toHaveLength(1)
      expect(chunkMessages(blocks)).toHaveLength(0)
    })
  })
})
