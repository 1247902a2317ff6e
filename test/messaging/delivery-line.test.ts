import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { enqueueDeliveries, scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { RATE_LIMIT_FIRST_WAIT_MS } from '../../src/messaging/rate-limit-backoff.ts'
import { RATE_LIMITED } from '../../src/sandbox/request-pipeline.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import {
  blockAccount,
  campaign,
  campaignInbox,
  deliveryRow,
  deliveryRows,
  type Friend,
  finishedJob,
  MULTICAST,
  metricValue,
  multicastsTo,
  newFriend,
  PUSH,
  pushesTo,
  QUOTA_EXCEEDED,
  sleep,
  waitForStatus,
} from './support.ts'

describe('LINE deliveries', () => {
  let k: TestKizuna

  beforeAll(async () => {
    // No quiet hours whatever the time; a short LINE timeout so a hung call is retried soon.
    k = await startTestKizuna({ QUIET_HOURS: '', LINE_TIMEOUT_MS: '1000' })
  })
  afterAll(async () => {
    await k.stopAll()
  })
  beforeEach(() => {
    k.line.clearRequests()
    k.line.clearFailures()
    k.line.setQuota(undefined)
  })

  it('personalised deliveries go out as one push each, with the row’s retry key', async () => {
    const friends = [await newFriend(k), await newFriend(k), await newFriend(k)]
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => campaign(f)),
    )
    expect(ids).toHaveLength(3)

    const rows = await waitForStatus(k, ids, 'sent')
    friends.forEach((f, i) => {
      const row = rows[i]!
      const pushes = pushesTo(k, f.userId)
      expect(pushes.map((p) => p.status)).toEqual([200])
      expect(pushes[0]!.headers['x-line-retry-key']).toBe(row.line_retry_key)
      expect(row.channel).toBe('line')
      expect(row.line_request_id).toBe(pushes[0]!.requestId)
      expect(row.multicast_request_id).toBeNull()
      expect(row.attempts).toBe(1)
      const inbox = campaignInbox(k, f.userId)
      expect(inbox).toHaveLength(1)
      expect(inbox[0]!.endpoint).toBe('push')
      expect(String(inbox[0]!.message.altText)).toContain(f.displayName)
      expect(multicastsTo(k, f.userId)).toHaveLength(0)
    })
    // Three different keys.
    expect(new Set(rows.map((r) => r.line_retry_key)).size).toBe(3)
    expectNoRejectedRequests(k.line)
  })

  it('the same content to several friends goes out as one multicast with its stored retry key', async () => {
    const friends = [await newFriend(k), await newFriend(k), await newFriend(k)]
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => campaign(f, { displayName: 'お客様' })),
    )

    const rows = await waitForStatus(k, ids, 'sent')
    const multicasts = k.line.requestsTo('POST', MULTICAST)
    expect(multicasts).toHaveLength(1)
    const [request] = multicasts
    expect(request!.status).toBe(200)
    expect([...(request!.body as { to: string[] }).to].sort()).toEqual(
      friends.map((f) => f.userId).sort(),
    )
    const mr = await k.deps.db
      .selectFrom('multicast_request')
      .selectAll()
      .where('id', '=', rows[0]!.multicast_request_id!)
      .executeTakeFirstOrThrow()
    expect(request!.headers['x-line-retry-key']).toBe(mr.line_retry_key)
    expect(mr.line_request_id).toBe(request!.requestId)
    for (const row of rows) {
      expect(row.multicast_request_id).toBe(mr.id)
      expect(row.channel).toBe('line')
      expect(row.line_request_id).toBe(request!.requestId)
    }
    for (const f of friends) {
      expect(pushesTo(k, f.userId)).toHaveLength(0)
      expect(campaignInbox(k, f.userId).map((m) => m.endpoint)).toEqual(['multicast'])
    }
    expectNoRejectedRequests(k.line)
  })

  it('a multicast that got a 500 is retried with the same retry key and reaches each friend once', async () => {
    const friends = [await newFriend(k), await newFriend(k), await newFriend(k)]
    k.line.failNext({ method: 'POST', path: MULTICAST, status: 500, count: 1 })
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => campaign(f, { displayName: 'お客様' })),
    )

    const rows = await waitForStatus(k, ids, 'sent')
    const multicasts = k.line.requestsTo('POST', MULTICAST)
    expect(multicasts.map((r) => r.status)).toEqual([500, 200])
    const mr = await k.deps.db
      .selectFrom('multicast_request')
      .selectAll()
      .where('id', '=', rows[0]!.multicast_request_id!)
      .executeTakeFirstOrThrow()
    for (const request of multicasts) {
      expect(request.headers['x-line-retry-key']).toBe(mr.line_retry_key)
      expect([...(request.body as { to: string[] }).to].sort()).toEqual(
        friends.map((f) => f.userId).sort(),
      )
    }
    // The retry sent the identical body, as LINE requires for a retry key.
    expect(multicasts[1]!.body).toEqual(multicasts[0]!.body)
    for (const row of rows) {
      expect(row.multicast_request_id).toBe(mr.id)
      expect(row.attempts).toBe(2)
      expect(row.line_request_id).toBe(multicasts[1]!.requestId)
    }
    for (const f of friends) expect(campaignInbox(k, f.userId)).toHaveLength(1)
    expectNoRejectedRequests(k.line)
  })

  it('a push that got a 500 is retried with the same retry key and delivered once', async () => {
    const f = await newFriend(k)
    k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 1 })
    const [id] = await scheduleDeliveries(k.deps, [campaign(f)])

    const [row] = await waitForStatus(k, [id!], 'sent')
    const pushes = pushesTo(k, f.userId)
    expect(pushes.map((p) => p.status)).toEqual([500, 200])
    expect(pushes.map((p) => p.headers['x-line-retry-key'])).toEqual([
      row!.line_retry_key,
      row!.line_retry_key,
    ])
    expect(pushes[1]!.body).toEqual(pushes[0]!.body)
    expect(row!.attempts).toBe(2)
    expect(row!.last_error).toBeNull()
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })

  it('a push that timed out is retried with the same retry key and delivered once', async () => {
    const f = await newFriend(k)
    // LINE hangs past LINE_TIMEOUT_MS (1 s), then drops the connection.
    k.line.failNext({ method: 'POST', path: PUSH, timeoutMs: 3_000, count: 1 })
    const [id] = await scheduleDeliveries(k.deps, [campaign(f)])

    const [row] = await waitForStatus(k, [id!], 'sent')
    const pushes = pushesTo(k, f.userId)
    expect(pushes).toHaveLength(2)
    expect(pushes[0]!.scripted).toBe(true)
    expect(pushes[1]!.status).toBe(200)
    expect(pushes.map((p) => p.headers['x-line-retry-key'])).toEqual([
      row!.line_retry_key,
      row!.line_retry_key,
    ])
    expect(row!.attempts).toBe(2)
    expect(row!.line_request_id).toBe(pushes[1]!.requestId)
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })

  it('rate-limit 429s back the row off longer each time, without using up its retries, and it is sent', async () => {
    const f = await newFriend(k)
    k.line.failNext({
      method: 'POST',
      path: PUSH,
      status: 429,
      body: { message: RATE_LIMITED },
      count: 2,
    })
    const [id] = await scheduleDeliveries(k.deps, [campaign(f)])

    const [row] = await waitForStatus(k, [id!], 'sent', 15_000)
    const pushes = pushesTo(k, f.userId)
    expect(pushes.map((p) => p.status)).toEqual([429, 429, 200])
    expect(new Set(pushes.map((p) => p.headers['x-line-retry-key']))).toEqual(
      new Set([row!.line_retry_key]),
    )
    // Waited 2 s, then 4 s (each jittered down by up to half): not hammered, and longer each time.
    expect(pushes[1]!.at - pushes[0]!.at).toBeGreaterThanOrEqual(RATE_LIMIT_FIRST_WAIT_MS / 2)
    expect(pushes[2]!.at - pushes[1]!.at).toBeGreaterThanOrEqual(RATE_LIMIT_FIRST_WAIT_MS)
    expect(row!.attempts).toBe(3)
    expect(row!.last_error).toBeNull()
    // Its first job completed at its first try: the 429 was no failure of it.
    const job = await finishedJob(k, id!)
    expect(job.attemptsMade).toBe(1)
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  }, 30_000)

  it('a quota 429 parks the delivery as quota_exceeded without retrying, and counts it', async () => {
    const f = await newFriend(k)
    const series = 'kizuna_deliveries_total{channel="none",status="quota_exceeded"}'
    const before = await metricValue(k, series)
    k.line.setQuota(0)
    const [id] = await scheduleDeliveries(k.deps, [campaign(f)])

    const [row] = await waitForStatus(k, [id!], 'quota_exceeded')
    expect(row!.last_error).toContain(QUOTA_EXCEEDED)
    expect(row!.sent_at).toBeNull()
    const job = await finishedJob(k, id!)
    expect(job.attemptsMade).toBe(1)
    await sleep(1_500)
    expect(pushesTo(k, f.userId).map((p) => p.status)).toEqual([429])
    expect((await deliveryRow(k, id!)).attempts).toBe(1)
    expect(campaignInbox(k, f.userId)).toHaveLength(0)
    expect(await metricValue(k, series)).toBeGreaterThanOrEqual(before + 1)
  })

  it('a quota 429 from LINE’s message text alone is told apart from a rate limit', async () => {
    const f = await newFriend(k)
    k.line.failNext({
      method: 'POST',
      path: PUSH,
      status: 429,
      body: { message: QUOTA_EXCEEDED },
      count: 1,
    })
    const [id] = await scheduleDeliveries(k.deps, [campaign(f)])
    const [row] = await waitForStatus(k, [id!], 'quota_exceeded')
    expect(row!.last_error).toContain(QUOTA_EXCEEDED)
    await finishedJob(k, id!)
    await sleep(1_500)
    expect(pushesTo(k, f.userId)).toHaveLength(1)
  })

  it('a 400 from LINE fails the delivery with LINE’s message and details, without retrying', async () => {
    const f = await newFriend(k)
    k.line.failNext({
      method: 'POST',
      path: PUSH,
      status: 400,
      body: {
        message: 'The request body has 1 error(s)',
        details: [{ message: 'Length must be between 0 and 400', property: 'messages[0].altText' }],
      },
      count: 1,
    })
    const [id] = await scheduleDeliveries(k.deps, [campaign(f)])

    const [row] = await waitForStatus(k, [id!], 'failed')
    expect(row!.last_error).toContain('400')
    expect(row!.last_error).toContain('The request body has 1 error(s)')
    expect(row!.last_error).toContain('messages[0].altText')
    expect(row!.last_error).toContain('Length must be between 0 and 400')
    const job = await finishedJob(k, id!)
    expect(job.attemptsMade).toBe(1)
    await sleep(1_500)
    expect(pushesTo(k, f.userId)).toHaveLength(1)
    expect((await deliveryRow(k, id!)).attempts).toBe(1)
  })

  it('a malformed line_uid is pushed alone, outside the chunk: LINE’s 400 fails it only (LINE refuses a whole multicast naming one)', async () => {
    const friends = [await newFriend(k), await newFriend(k), await newFriend(k)]
    const [good1, bad, good2] = friends as [Friend, Friend, Friend]
    // A line_uid LINE never issued (an import or a hand edit): not `U` + 32 lowercase hex.
    const malformed = bad.userId.toUpperCase()
    await k.deps.db
      .updateTable('line_user')
      .set({ line_uid: malformed })
      .where('line_uid', '=', bad.userId)
      .execute()
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => campaign(f, { displayName: 'all' })),
    )
    const [good1Id, badId, good2Id] = ids as [string, string, string]

    await waitForStatus(k, [good1Id, good2Id], 'sent', 15_000)
    const [failed] = await waitForStatus(k, [badId], 'failed', 15_000)
    expect(failed?.last_error).toContain("'to'")
    await sleep(500)
    for (const f of [good1, good2]) expect(campaignInbox(k, f.userId)).toHaveLength(1)
    const chunks = k.line
      .requestsTo('POST', MULTICAST)
      .filter((r) => JSON.stringify(r.body).includes(good1.userId))
    expect(chunks.map((r) => [r.status, (r.body as { to: string[] }).to.sort()])).toEqual([
      [200, [good1.userId, good2.userId].sort()],
    ])
    const named = (r: { body: unknown }) => JSON.stringify(r.body).includes(malformed)
    expect(
      k.line
        .requestsTo('POST', MULTICAST)
        .filter(named)
        .map((r) => r.status),
    ).toEqual([])
    expect(
      k.line
        .requestsTo('POST', PUSH)
        .filter(named)
        .map((r) => r.status),
    ).toEqual([400])
    for (const row of await deliveryRows(k, ids)) expect(row.attempts).toBe(1)
  })

  it('a friend who blocked the account and has no email is skipped, nothing pushed', async () => {
    const f = await newFriend(k)
    await blockAccount(k, f.userId)
    const [id] = await scheduleDeliveries(k.deps, [campaign(f)])

    const [row] = await waitForStatus(k, [id!], 'skipped')
    expect(row!.skip_reason).toContain('line_blocked')
    expect(row!.skip_reason).toContain('no_email')
    expect(row!.channel).toBeNull()
    expect(pushesTo(k, f.userId)).toHaveLength(0)
    expect(multicastsTo(k, f.userId)).toHaveLength(0)
  })

  it('the same dedupe key twice makes one delivery; the same ids queued again push once', async () => {
    const f = await newFriend(k)
    const other = await newFriend(k)
    const intent = campaign(f)
    const [first, again] = await Promise.all([
      scheduleDeliveries(k.deps, [intent]),
      scheduleDeliveries(k.deps, [intent]),
    ])
    const ids = [...first, ...again]
    expect(ids).toHaveLength(1)
    expect(await scheduleDeliveries(k.deps, [intent])).toEqual([])
    const byKey = await k.deps.db
      .selectFrom('delivery')
      .select('id')
      .where('dedupe_key', '=', intent.dedupeKey)
      .execute()
    expect(byKey).toEqual([{ id: ids[0] }])

    // Queued again: by the same job id, and inside another group (another job id).
    const [otherId] = await scheduleDeliveries(k.deps, [campaign(other)])
    await Promise.all([
      enqueueDeliveries(k.deps.queues, [{ id: ids[0]! }]),
      enqueueDeliveries(k.deps.queues, [{ id: ids[0]! }]),
      enqueueDeliveries(k.deps.queues, [{ id: ids[0]! }, { id: otherId! }]),
    ])
    await waitForStatus(k, [ids[0]!, otherId!], 'sent')
    await enqueueDeliveries(k.deps.queues, [{ id: otherId! }, { id: ids[0]! }])
    await sleep(1_000)
    expect(pushesTo(k, f.userId)).toHaveLength(1)
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
    expect(campaignInbox(k, other.userId)).toHaveLength(1)
    expect((await deliveryRow(k, ids[0]!)).attempts).toBe(1)
  })
})
