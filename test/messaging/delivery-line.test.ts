import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { jobIds } from '../../src/jobs.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import {
  type DeliveryCategory,
  type DeliveryIntent,
  enqueueDeliveries,
  scheduleDeliveries,
} from '../../src/messaging/delivery.service.ts'
import { RATE_LIMITED } from '../../src/sandbox/request-pipeline.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { eventually } from '../support/wait.ts'

const WEEK_MS = 7 * 24 * 60 * 60 * 1000
const PUSH = '/v2/bot/message/push'
const MULTICAST = '/v2/bot/message/multicast'
const QUOTA_EXCEEDED = 'You have reached your monthly limit.'
const SAMPLE = JSON.parse(
  readFileSync(
    new URL('../../flex-templates/campaign-sample.sample.json', import.meta.url),
    'utf8',
  ),
) as Record<string, string>

type Friend = { userId: string; customerId: string; displayName: string }

/** A LINE user who added the account, once Kizuna has welcomed them (customer and identity exist). */
async function newFriend(k: TestKizuna, displayName = `友だち ${randomUUID().slice(0, 8)}`) {
  const user = k.line.users.create({ displayName })
  expect((await k.line.users.follow(user.userId)).status).toBe(200)
  const customerId = await eventually(async () => {
    const row = await k.deps.db
      .selectFrom('delivery')
      .innerJoin('line_user', 'line_user.customer_id', 'delivery.customer_id')
      .select(['delivery.customer_id', 'delivery.status'])
      .where('line_user.line_uid', '=', user.userId)
      .where('delivery.kind', '=', 'welcome')
      .executeTakeFirst()
    expect(row?.status).toBe('sent')
    return row!.customer_id
  })
  return { userId: user.userId, customerId, displayName } satisfies Friend
}

/** A campaign-sample delivery personalised for this friend (or with the same vars for all). */
function campaign(
  to: Friend,
  opts: {
    category?: DeliveryCategory
    overCap?: 'defer' | 'skip'
    displayName?: string
    dedupeKey?: string
  } = {},
): DeliveryIntent {
  return {
    dedupeKey: opts.dedupeKey ?? `campaign-test:${randomUUID()}`,
    kind: 'campaign',
    category: opts.category ?? 'marketing',
    customerId: to.customerId,
    content: {
      templateId: 'campaign-sample',
      vars: { ...SAMPLE, displayName: opts.displayName ?? to.displayName },
    },
    ...(opts.overCap ? { overCap: opts.overCap } : {}),
  }
}

function deliveryRows(k: TestKizuna, ids: string[]) {
  return k.deps.db
    .selectFrom('delivery')
    .selectAll()
    .where('id', 'in', ids)
    .execute()
    .then((rows) => ids.map((id) => rows.find((r) => r.id === id)!))
}

async function deliveryRow(k: TestKizuna, id: string) {
  const [row] = await deliveryRows(k, [id])
  return row!
}

async function waitForStatus(k: TestKizuna, ids: string[], status: string, timeout?: number) {
  return eventually(async () => {
    const rows = await deliveryRows(k, ids)
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => status))
    return rows
  }, timeout)
}

const pushesTo = (k: TestKizuna, userId: string) =>
  k.line.requestsTo('POST', PUSH).filter((r) => (r.body as { to?: string }).to === userId)

const multicastsTo = (k: TestKizuna, userId: string) =>
  k.line
    .requestsTo('POST', MULTICAST)
    .filter((r) => ((r.body as { to?: string[] }).to ?? []).includes(userId))

/** The campaign messages the user received (the welcome came by reply). */
const campaignInbox = (k: TestKizuna, userId: string) =>
  k.line.inbox(userId).filter((m) => String(m.message.altText).includes(SAMPLE.headline!))

/** The single-delivery job scheduleDeliveries made, once it has finished. */
async function finishedJob(k: TestKizuna, deliveryId: string) {
  return eventually(async () => {
    const job = await k.deps.queues.byName.delivery.getJob(jobIds.deliveries([deliveryId]))
    expect(await job?.getState()).toBe('completed')
    return job!
  })
}

async function metricValue(k: TestKizuna, series: string): Promise<number> {
  const text = await (await fetch(`${k.baseUrl}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line ? Number(line.slice(series.length + 1)) : 0
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** HH:MM on the store's clock (Asia/Tokyo). */
function tokyoHhMm(at: Date): string {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Asia/Tokyo',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).format(at)
}

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

  it('rate-limit 429s pause the queue and the row is sent, without using up its retries', async () => {
    const f = await newFriend(k)
    // As many 429s as the job has attempts: if each counted as a failure the row would fail.
    const attempts = k.deps.queues.byName.delivery.defaultJobOptions.attempts ?? 1
    k.line.failNext({
      method: 'POST',
      path: PUSH,
      status: 429,
      body: { message: RATE_LIMITED },
      count: attempts,
    })
    const [id] = await scheduleDeliveries(k.deps, [campaign(f)])

    const [row] = await waitForStatus(k, [id!], 'sent', 25_000)
    const pushes = pushesTo(k, f.userId)
    expect(pushes.map((p) => p.status)).toEqual([...Array(attempts).fill(429), 200])
    expect(new Set(pushes.map((p) => p.headers['x-line-retry-key']))).toEqual(
      new Set([row!.line_retry_key]),
    )
    // Paused about a second after each 429, not hammered.
    for (let i = 1; i < pushes.length; i++) {
      expect(pushes[i]!.at - pushes[i - 1]!.at).toBeGreaterThanOrEqual(900)
    }
    expect(row!.attempts).toBe(attempts + 1)
    expect(row!.last_error).toBeNull()
    const job = await finishedJob(k, id!)
    expect(job.attemptsMade).toBeLessThan(attempts)
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  }, 40_000)

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

  it('a friend who blocked the account and has no email is skipped, nothing pushed', async () => {
    const f = await newFriend(k)
    expect((await k.line.users.block(f.userId)).status).toBe(200)
    await eventually(async () => {
      const lu = await k.deps.db
        .selectFrom('line_user')
        .select('status')
        .where('line_uid', '=', f.userId)
        .executeTakeFirst()
      expect(lu?.status).toBe('blocked')
    })
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

describe('quiet hours', () => {
  let k: TestKizuna
  /** The window's end: an hour from when the window was set, to the minute. */
  let windowEnd: Date

  beforeAll(async () => {
    const now = new Date()
    const start = tokyoHhMm(new Date(now.getTime() - 60 * 60_000))
    const end = tokyoHhMm(new Date(now.getTime() + 60 * 60_000))
    windowEnd = new Date(Math.floor(now.getTime() / 60_000) * 60_000 + 60 * 60_000)
    // HH:MM formatting wraps at midnight by itself (e.g. 23:30-01:30).
    k = await startTestKizuna({ QUIET_HOURS: `${start}-${end}`, TZ_STORE: 'Asia/Tokyo' })
  })
  afterAll(async () => {
    await k.stopAll()
  })

  it('marketing waits for the window’s end; transactional goes out at once', async () => {
    const f = await newFriend(k)
    const [marketingId, transactionalId] = await scheduleDeliveries(k.deps, [
      campaign(f),
      campaign(f, { category: 'transactional', displayName: 'transactional' }),
    ])

    await waitForStatus(k, [transactionalId!], 'sent')
    const marketing = await deliveryRow(k, marketingId!)
    expect(marketing.status).toBe('pending')
    expect(Math.abs(marketing.send_after.getTime() - windowEnd.getTime())).toBeLessThanOrEqual(
      60_000,
    )
    expect(marketing.sent_at).toBeNull()
    const pushes = pushesTo(k, f.userId)
    expect(pushes).toHaveLength(1)
    expect(
      String((pushes[0]!.body as { messages: { altText: string }[] }).messages[0]!.altText),
    ).toContain('transactional')
    // It is not forgotten: a job is due at the window's end.
    const due = await k.deps.queues.byName.delivery.getJob(
      jobIds.deliveryAt(marketingId!, marketing.send_after.getTime()),
    )
    expect(await due?.getState()).toBe('delayed')
    expect(due!.data).toEqual({ deliveryIds: [marketingId] })
    expect(due!.timestamp + due!.delay).toBeGreaterThanOrEqual(marketing.send_after.getTime() - 1)
  })

  // BUG (reported, not fixed here): the sweeper re-enqueues a lone due delivery under the job id
  // `delivery-<id>` (jobIds.deliveries), the id its first job already had. BullMQ keeps finished
  // jobs (removeOnComplete 24 h / 1,000) and ignores an add with an existing id, so the sweep is
  // a no-op and the delivery is stuck. Remove `.fails` once the sweeper's job ids are fresh.
  it('a deferred delivery found due by the sweeper is sent (a delivery scheduled on its own)', async () => {
    const f = await newFriend(k)
    const [id] = await scheduleDeliveries(k.deps, [campaign(f)])
    await eventually(async () => {
      const row = await deliveryRow(k, id!)
      expect(row.status).toBe('pending')
      expect(row.send_after.getTime()).toBeGreaterThan(Date.now())
    })
    await finishedJob(k, id!)
    await sendDueAfterWindow(k, [id!])
    expect(pushesTo(k, f.userId)).toHaveLength(1)
  })

  it('a deferred delivery found due by the sweeper is sent (deliveries scheduled together)', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => campaign(f)),
    )
    await eventually(async () => {
      const rows = await deliveryRows(k, ids)
      expect(rows.map((r) => r.status)).toEqual(['pending', 'pending'])
      expect(rows.every((r) => r.send_after.getTime() > Date.now())).toBe(true)
    })
    await sendDueAfterWindow(k, ids)
  })
})

/**
 * As if the quiet hours were over: the rows are due (send_after now, in SQL) and the clock is
 * past the window's end; the delayed jobs are still hours away, so only the sweeper can send them.
 */
async function sendDueAfterWindow(k: TestKizuna, ids: string[]) {
  await k.deps.db
    .updateTable('delivery')
    .set({ send_after: sql<Date>`now()` })
    .where('id', 'in', ids)
    .execute()
  const realClock = k.deps.clock
  k.deps.clock = { now: () => new Date(Date.now() + 2 * 60 * 60_000) }
  try {
    await sweepOnce(k.deps, 0)
    return await waitForStatus(k, ids, 'sent', 10_000)
  } finally {
    k.deps.clock = realClock
  }
}

describe('weekly marketing cap', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '1' })
  })
  afterAll(async () => {
    await k.stopAll()
  })
  beforeEach(() => {
    k.line.clearRequests()
  })

  it('two in one batch: one is sent, the other waits a week from then', async () => {
    const f = await newFriend(k)
    const ids = await scheduleDeliveries(k.deps, [campaign(f), campaign(f)])

    const rows = await eventually(async () => {
      const rows = await deliveryRows(k, ids)
      expect(rows.map((r) => r.status).sort()).toEqual(['pending', 'sent'])
      return rows
    })
    const sent = rows.find((r) => r.status === 'sent')!
    const waiting = rows.find((r) => r.status === 'pending')!
    expect(
      Math.abs(waiting.send_after.getTime() - (sent.sent_at!.getTime() + WEEK_MS)),
    ).toBeLessThanOrEqual(60_000)
    expect(pushesTo(k, f.userId)).toHaveLength(1)
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })

  it('over the cap a later one waits until the counted send turns a week old, or is skipped', async () => {
    const f = await newFriend(k)
    const [firstId] = await scheduleDeliveries(k.deps, [campaign(f)])
    const [first] = await waitForStatus(k, [firstId!], 'sent')

    const [deferId, skipId] = await scheduleDeliveries(k.deps, [
      campaign(f),
      campaign(f, { overCap: 'skip' }),
    ])
    const [deferred, skipped] = await eventually(async () => {
      const rows = await deliveryRows(k, [deferId!, skipId!])
      expect(rows.map((r) => r.status)).toEqual(['pending', 'skipped'])
      expect(rows[0]!.send_after.getTime()).toBeGreaterThan(Date.now())
      return rows
    })
    expect(
      Math.abs(deferred!.send_after.getTime() - (first!.sent_at!.getTime() + WEEK_MS)),
    ).toBeLessThanOrEqual(1_000)
    expect(skipped!.skip_reason).toBe('weekly_cap')
    expect(pushesTo(k, f.userId)).toHaveLength(1)

    // Transactional messages ignore the cap.
    const [txId] = await scheduleDeliveries(k.deps, [campaign(f, { category: 'transactional' })])
    await waitForStatus(k, [txId!], 'sent')
    expect(pushesTo(k, f.userId)).toHaveLength(2)
    expect((await deliveryRow(k, deferId!)).status).toBe('pending')
  })

  // BUG (reported, not fixed here): the cap is read, then the send happens, with no lock per
  // customer. Jobs running at the same time (worker concurrency 4, more processes) all see room
  // and all send. Remove `.fails` once concurrent jobs respect the cap.
  it('campaigns whose jobs run at the same time still send at most the cap', async () => {
    const f = await newFriend(k)
    const scheduled = await Promise.all(
      Array.from({ length: 6 }, () => scheduleDeliveries(k.deps, [campaign(f)])),
    )
    const ids = scheduled.flat()
    expect(ids).toHaveLength(6)
    const rows = await eventually(async () => {
      const rows = await deliveryRows(k, ids)
      for (const r of rows) {
        const deferred = r.status === 'pending' && r.send_after.getTime() > Date.now() + WEEK_MS / 2
        expect(r.status === 'sent' || deferred).toBe(true)
      }
      return rows
    })
    expect(rows.filter((r) => r.status === 'sent')).toHaveLength(1)
  })
})
