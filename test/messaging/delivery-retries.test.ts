import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { setConsent } from '../../src/consent/consent.service.ts'
import { createSendDeliveries } from '../../src/messaging/delivery.jobs.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { failUnfinishedDeliveries } from '../../src/messaging/delivery-outcomes.repo.ts'
import { cli } from '../support/cli.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { eventually } from '../support/wait.ts'
import {
  campaign,
  campaignInbox,
  deliveryRows,
  MULTICAST,
  multicastsTo,
  newFriend,
  PUSH,
  pushesTo,
  refuseNextPush,
  sendJob,
  sendTools,
  waitForStatus,
} from './support.ts'

/** Retries that must not send a message twice or lose it (LINE-API.md §2.4). */
describe('delivery retries', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '' })
  })
  afterAll(async () => {
    await k.stopAll()
  })
  beforeEach(() => {
    k.line.clearFailures()
  })

  const sendAlone = (ids: string[]) =>
    k.deps.queues.enqueue(
      'messaging.send-deliveries',
      { deliveryIds: ids },
      { jobId: `delivery-test-${randomUUID()}` },
    )

  it('a multicast chunk retried in parts repeats its whole stored request under its key', async () => {
    const friends = [await newFriend(k), await newFriend(k), await newFriend(k)]
    k.line.failNext({ method: 'POST', path: MULTICAST, status: 500, count: 1 })
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => campaign(f, { displayName: 'お客様' })),
    )
    await eventually(async () => {
      const rows = await deliveryRows(k, ids)
      expect(rows.every((r) => r.status === 'pending' && r.multicast_request_id)).toBe(true)
    })
    // One of the three goes again on its own (as a sweep would split them).
    await sendAlone([ids[0]!])
    await waitForStatus(k, ids, 'sent', 15_000)

    // This chunk's requests: the first to these friends (the 500), then its retries.
    const [failed, ...retries] = multicastsTo(k, friends[0]!.userId)
    expect(failed!.status).toBe(500)
    expect((failed!.body as { to: string[] }).to.toSorted()).toEqual(
      friends.map((f) => f.userId).toSorted(),
    )
    expect(retries.length).toBeGreaterThanOrEqual(1)
    for (const retry of retries) {
      expect(retry.headers['x-line-retry-key']).toBe(failed!.headers['x-line-retry-key'])
      expect(retry.body).toEqual(failed!.body)
    }
    for (const f of friends) expect(campaignInbox(k, f.userId)).toHaveLength(1)
    expectNoRejectedRequests(k.line)
  })

  it('deliveries that were pushed alone before never join a new multicast', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 2 })
    // Scheduled apart, each goes alone (a push), and both pushes fail.
    const ids: string[] = []
    for (const f of friends) {
      ids.push(...(await scheduleDeliveries(k.deps, [campaign(f, { displayName: 'お客様' })])))
    }
    await eventually(async () => {
      const rows = await deliveryRows(k, ids)
      expect(rows.map((r) => [r.status, r.attempts])).toEqual([
        ['pending', 1],
        ['pending', 1],
      ])
    })
    await sendAlone(ids) // together now, with the same content
    const rows = await waitForStatus(k, ids, 'sent', 15_000)

    const multicastTo = k.line
      .requestsTo('POST', MULTICAST)
      .flatMap((r) => (r.body as { to: string[] }).to)
    for (const f of friends) expect(multicastTo).not.toContain(f.userId)
    rows.forEach((row, i) => {
      const pushes = pushesTo(k, friends[i]!.userId)
      expect(pushes.map((p) => p.headers['x-line-retry-key'])).toEqual([
        row.line_retry_key,
        row.line_retry_key,
      ])
      expect(row.multicast_request_id).toBeNull()
      expect(campaignInbox(k, friends[i]!.userId)).toHaveLength(1)
    })
  })

  it('a push retried after a 500 repeats its first request byte for byte, under the same key', async () => {
    const user = k.line.users.create()
    user.friendship = 'friend'
    const follow = k.line.buildEvent('follow', user.userId, {})
    // The reply token is spent, so the welcome card (a signed barcode link, points) is pushed.
    const replyToken = (follow as { replyToken: string }).replyToken
    k.line.context.state.replyTokens.get(replyToken)!.used = true
    k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 1 })
    await k.line.deliverWebhook([follow])

    const [failed, retry] = await eventually(() => {
      const pushes = pushesTo(k, user.userId)
      expect(pushes.map((p) => p.status)).toEqual([500, 200])
      return pushes
    }, 15_000)
    expect(retry!.headers['x-line-retry-key']).toBe(failed!.headers['x-line-retry-key'])
    expect(JSON.stringify(retry!.body)).toBe(JSON.stringify(failed!.body))
    expect(k.line.inbox(user.userId)).toHaveLength(1)
    const row = await eventually(async () => {
      const row = await k.deps.db
        .selectFrom('delivery')
        .innerJoin('line_user', 'line_user.customer_id', 'delivery.customer_id')
        .select(['delivery.status', 'delivery.attempts', 'delivery.push_body'])
        .where('line_user.line_uid', '=', user.userId)
        .executeTakeFirstOrThrow()
      expect(row.status).toBe('sent')
      return row
    })
    expect(row.attempts).toBe(2)
    expect(row.push_body).toBeNull() // kept only while it may go again
  })

  it('a delivery failed for good keeps its stored push: a requeue repeats it, never a new one', async () => {
    const customer = await k.deps.db
      .insertInto('customer')
      .values({ display_name: 'Sato Hanako' })
      .returning('id')
      .executeTakeFirstOrThrow()
    const pushBody = JSON.stringify({ to: 'U0', messages: [{ type: 'text', text: 'Sato Hanako' }] })
    const row = await k.deps.db
      .insertInto('delivery')
      .values({
        dedupe_key: `retry-test:${randomUUID()}`,
        kind: 'campaign',
        category: 'marketing',
        customer_id: customer.id,
        template_id: 'campaign-sample',
        attempts: 10,
        push_body: pushBody,
        line_first_call_at: new Date(),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    await failUnfinishedDeliveries(k.deps.db, new Map([[row.id, 10]]), 'LINE kept answering 500')
    // LINE may have taken it: only erasure removes it (it names the person).
    expect(
      await k.deps.db
        .selectFrom('delivery')
        .select(['status', 'push_body'])
        .where('id', '=', row.id)
        .executeTakeFirstOrThrow(),
    ).toEqual({ status: 'failed', push_body: pushBody })
  })

  it('deliveries failed after their last try count as failed in kizuna_deliveries_total', async () => {
    const failedSoFar = async () =>
      (await k.deps.metrics.deliveries.get()).values
        .filter((v) => v.labels.status === 'failed')
        .reduce((sum, v) => sum + v.value, 0)
    const before = await failedSoFar()
    const f = await newFriend(k)
    const ids = (
      await insertDeliveries(
        k.deps.db,
        [1, 2].map((n) => campaign(f, { displayName: `${f.displayName} ${n}` })),
      )
    ).map((r) => r.id)
    // The job's last try: LINE answers 500 to both.
    k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 2 })
    const error = await sendJob(k)(ids).catch((e: Error) => e)
    expect(error).toMatchObject({ message: '2 of 2 deliveries failed for now' })
    await createSendDeliveries(sendTools(k)).onFinalFailure?.(
      k.deps,
      { deliveryIds: ids },
      error as Error,
    )
    expect((await deliveryRows(k, ids)).map((r) => r.status)).toEqual(['failed', 'failed'])
    expect(await failedSoFar()).toBe(before + 2)
  })

  it('a multicast chunk that may have reached LINE is not sent again, whole or changed, once someone in it opted out', async () => {
    k.line.clearRequests() // an earlier test spent a reply token on purpose (a 400)
    const [stays, optsOut] = [await newFriend(k), await newFriend(k)]
    const queue = k.deps.queues.byName.delivery
    const send = sendJob(k)
    await queue.pause() // this test plays the workers
    try {
      const ids = await scheduleDeliveries(
        k.deps,
        [stays, optsOut].map((f) => campaign(f, { displayName: 'お客様' })),
      )
      k.line.failNext({ method: 'POST', path: MULTICAST, status: 500, count: 1 })
      await expect(send(ids)).rejects.toThrow(/failed for now/)
      // Before the retry, one of them opts out of marketing on LINE (and has no email).
      await setConsent(k.deps.db, optsOut.customerId, {
        category: 'marketing',
        channel: 'line',
        granted: false,
        source: 'line-postback',
      })
      // Whole, it would reach the one who opted out; changed under its key, LINE's answer is
      // undefined; under a new key, the other could get it twice. It is not sent.
      await send(ids)

      const [held, skipped] = await deliveryRows(k, ids)
      expect(held!.status).toBe('failed')
      expect(held!.last_error).toMatch(/multicast chunk that names someone who may no longer/)
      expect(skipped!.status).toBe('skipped')
      const multicasts = k.line.requestsTo('POST', MULTICAST)
      expect(multicasts.map((m) => m.status)).toEqual([500])
      expect(pushesTo(k, stays.userId)).toHaveLength(0)
      expect(campaignInbox(k, optsOut.userId)).toHaveLength(0)
      expectNoRejectedRequests(k.line)
    } finally {
      await queue.resume()
    }
  })

  it('`deliveries retry` leaves a failed push that may have reached LINE over 23 hours ago', async () => {
    const [unknown, refused] = [await newFriend(k), await newFriend(k)]
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    const queue = k.deps.queues.byName.delivery
    const send = sendJob(k)
    const intent = (f: typeof unknown) => ({
      ...campaign(f, { category: 'transactional' }),
      kind,
    })
    await queue.pause() // this test plays the workers
    try {
      const [maybe] = await scheduleDeliveries(k.deps, [intent(unknown)])
      await send([maybe!])
      expect(campaignInbox(k, unknown.userId)).toHaveLength(1)
      // LINE took the push, but its answer was lost (as after a timeout): the row waits for a
      // retry with the request it stored, and every retry gets a 500 until the job gives up.
      const [push] = pushesTo(k, unknown.userId)
      await k.deps.db
        .updateTable('delivery')
        .set({ status: 'pending', sent_at: null, push_body: JSON.stringify(push!.body) })
        .where('id', '=', maybe!)
        .execute()
      k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 1 })
      const error = await send([maybe!]).catch((e: Error) => e)
      expect(error).toMatchObject({ message: '1 of 1 deliveries failed for now' })
      // That was the job's last try.
      await createSendDeliveries(sendTools(k)).onFinalFailure?.(
        k.deps,
        { deliveryIds: [maybe!] },
        error as Error,
      )
      // The other one LINE refused with a 400: nothing went out.
      const [bad] = await scheduleDeliveries(k.deps, [intent(refused)])
      refuseNextPush(k)
      await send([bad!])
      expect((await deliveryRows(k, [maybe!, bad!])).map((r) => r.status)).toEqual([
        'failed',
        'failed',
      ])

      // A day later (LINE forgets a retry key after 24 hours), the operator retries failed ones.
      await sql`update delivery
        set line_first_call_at = line_first_call_at - interval '25 hours',
          updated_at = updated_at - interval '25 hours'
        where id in (${maybe!}, ${bad!})`.execute(k.deps.db)
      for (const entry of k.line.context.state.retryKeys.values()) entry.at -= 25 * 3600_000
      const run = await cli(['deliveries', 'retry', '--status', 'failed', '--kind', kind])
      expect(run.code).toBe(0)
      await send([maybe!, bad!])

      expect(campaignInbox(k, unknown.userId)).toHaveLength(1) // not twice
      expect(campaignInbox(k, refused.userId)).toHaveLength(1)
      const [left, requeued] = await deliveryRows(k, [maybe!, bad!])
      expect(left!.status).toBe('failed')
      expect(requeued!.status).toBe('sent')
      expect(run.stdout).toMatch(/^1 failed deliveries back to pending/)
      expect(run.stdout).toContain(
        '1 failed delivery left as it is: its request may have reached LINE more than 23 hours ago',
      )
    } finally {
      await queue.resume()
    }
  })
})
