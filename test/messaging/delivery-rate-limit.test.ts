import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { enqueueDeliveries, scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import {
  RATE_LIMIT_FIRST_WAIT_MS,
  RATE_LIMIT_MAX_WAIT_MS,
  RETRY_AFTER_MAX_MS,
  rateLimitWaitMs,
} from '../../src/messaging/rate-limit-backoff.ts'
import { retryAfterOf } from '../../src/platform/line.ts'
import { RATE_LIMITED } from '../../src/sandbox/request-pipeline.ts'
import { cli } from '../support/cli.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import {
  campaign,
  campaignInbox,
  deliveryRow,
  deliveryRows,
  type Friend,
  MULTICAST,
  metricValue,
  multicastsTo,
  newFriend,
  PUSH,
  pushesTo,
  sleep,
  waitForStatus,
} from './support.ts'

/** LINE_RATE_LIMIT_TRIES here: a delivery is parked at its second rate-limit 429. */
const TRIES = 2

describe('rate-limit 429s on deliveries', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', LINE_RATE_LIMIT_TRIES: String(TRIES) })
  })
  afterAll(async () => {
    await k.stopAll()
  })
  beforeEach(() => {
    k.line.clearFailures()
  })

  /** The stand-in answers a rate-limit 429 to every push to this user (LINE-API.md §2.5). */
  function refusePushesTo(userId: string, opts: { count?: number; retryAfter?: string } = {}) {
    k.line.failNext({
      method: 'POST',
      path: PUSH,
      status: 429,
      body: { message: RATE_LIMITED },
      count: opts.count ?? Number.POSITIVE_INFINITY,
      match: (r) => (r.body as { to?: string }).to === userId,
      ...(opts.retryAfter ? { headers: { 'retry-after': opts.retryAfter } } : {}),
    })
  }

  const notice = (f: Friend, kind = 'notice') => ({
    ...campaign(f, { category: 'transactional' }),
    kind,
  })

  it('a person LINE keeps refusing (429) is parked after LINE_RATE_LIMIT_TRIES, while the others get theirs', async () => {
    const hot = await newFriend(k)
    const others = [await newFriend(k), await newFriend(k), await newFriend(k)]
    const kind = `rate-test-${randomUUID().slice(0, 8)}`
    const parkedBefore = await metricValue(
      k,
      'kizuna_deliveries_total{channel="none",status="failed"}',
    )
    refusePushesTo(hot.userId)
    const [id] = await scheduleDeliveries(k.deps, [notice(hot, kind)])
    await eventually(() => expect(pushesTo(k, hot.userId).length).toBeGreaterThanOrEqual(1))
    // Sent while the refused one waits for its next try, each in a job of its own.
    const otherIds: string[] = []
    for (const f of others) otherIds.push(...(await scheduleDeliveries(k.deps, [notice(f)])))

    const [row] = await waitForStatus(k, [id!], 'failed', 20_000)
    expect(row!.last_error).toMatch(/^rate limited: LINE answered 429 to 2 tries/)
    expect(row!.last_error).toContain(RATE_LIMITED)
    await waitForStatus(k, otherIds, 'sent')
    for (const f of others) {
      expect(pushesTo(k, f.userId).map((p) => p.status)).toEqual([200])
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
    }
    // Not one more try once parked.
    await sleep(2_500)
    const refused = pushesTo(k, hot.userId)
    expect(refused.map((p) => p.status)).toEqual([429, 429])
    // It waited between the two (2 s, jittered down by up to half), not a moment.
    expect(refused[1]!.at - refused[0]!.at).toBeGreaterThanOrEqual(RATE_LIMIT_FIRST_WAIT_MS / 2)
    expect(
      await metricValue(k, 'kizuna_deliveries_total{channel="none",status="failed"}'),
    ).toBeGreaterThanOrEqual(parkedBefore + 1)

    // The operator sends it again: a new round of tries, then parked again.
    const again = async () => {
      const run = await cli(['deliveries', 'retry', '--status', 'failed', '--kind', kind])
      expect(run.stdout).toMatch(/^1 failed deliveries back to pending/)
      await enqueueDeliveries(k.deps.queues, [{ id: id! }], { cause: `requeued-${Date.now()}` })
    }
    await again()
    await eventually(async () => {
      expect(pushesTo(k, hot.userId).map((p) => p.status)).toEqual([429, 429, 429, 429])
      expect((await deliveryRow(k, id!)).status).toBe('failed')
    }, 20_000)

    // LINE takes it again: sent once.
    k.line.clearFailures()
    await again()
    await waitForStatus(k, [id!], 'sent')
    expect(campaignInbox(k, hot.userId)).toHaveLength(1)
    const keys = new Set(pushesTo(k, hot.userId).map((p) => p.headers['x-line-retry-key']))
    expect(keys).toEqual(new Set([row!.line_retry_key]))
  }, 60_000)

  it('one multicast LINE refused goes again once, not once per recipient', async () => {
    const friends: Friend[] = []
    for (let i = 0; i < 6; i++) friends.push(await newFriend(k))
    const to = new Set(friends.map((f) => f.userId))
    k.line.failNext({
      method: 'POST',
      path: MULTICAST,
      status: 429,
      body: { message: RATE_LIMITED },
      count: 1,
      match: (r) => ((r.body as { to?: string[] }).to ?? []).some((u) => to.has(u)),
    })
    const ids = await scheduleDeliveries(
      k.deps,
      friends.map((f) => ({ ...notice(f), content: campaign(f, { displayName: 'all' }).content })),
    )

    await waitForStatus(k, ids, 'sent', 15_000)
    await sleep(1_000)
    const calls = multicastsTo(k, friends[0]!.userId)
    expect(calls.map((c) => c.status)).toEqual([429, 200])
    expect((calls[1]!.body as { to: string[] }).to).toHaveLength(6)
    for (const f of friends) expect(campaignInbox(k, f.userId)).toHaveLength(1)
    for (const row of await deliveryRows(k, ids)) expect(row.attempts).toBe(2)
  })

  it('a Retry-After of 0 does not cancel the backoff', async () => {
    const f = await newFriend(k)
    refusePushesTo(f.userId, { retryAfter: '0' })
    const [id] = await scheduleDeliveries(k.deps, [notice(f)])

    await waitForStatus(k, [id!], 'failed', 15_000)
    const refused = pushesTo(k, f.userId)
    expect(refused.map((p) => p.status)).toEqual([429, 429])
    expect(refused[1]!.at - refused[0]!.at).toBeGreaterThanOrEqual(RATE_LIMIT_FIRST_WAIT_MS / 2)
  })

  it('a delivery requeued by `deliveries retry` gets all its rate-limit tries again', async () => {
    const f = await newFriend(k)
    const kind = `rate-test-${randomUUID().slice(0, 8)}`
    refusePushesTo(f.userId, { count: 1 })
    const [id] = await scheduleDeliveries(k.deps, [notice(f, kind)])
    await eventually(() => expect(pushesTo(k, f.userId)).toHaveLength(1))
    // Its next try fails for another reason (LINE refuses the message itself).
    k.line.failNext({
      method: 'POST',
      path: PUSH,
      status: 400,
      body: { message: 'The request body has 1 error(s)' },
      count: 1,
      match: (r) => (r.body as { to?: string }).to === f.userId,
    })
    await waitForStatus(k, [id!], 'failed', 15_000)

    const run = await cli(['deliveries', 'retry', '--status', 'failed', '--kind', kind])
    expect(run.stdout).toMatch(/^1 failed deliveries back to pending/)
    // One 429 on the retry is the first of its LINE_RATE_LIMIT_TRIES, not the last.
    refusePushesTo(f.userId, { count: 1 })
    await enqueueDeliveries(k.deps.queues, [{ id: id! }], { cause: `requeued-${Date.now()}` })
    await waitForStatus(k, [id!], 'sent', 15_000)
    expect(pushesTo(k, f.userId).map((p) => p.status)).toEqual([429, 400, 429, 200])
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })

  it("waits as long as LINE's Retry-After says when LINE sends one", async () => {
    const f = await newFriend(k)
    refusePushesTo(f.userId, { count: 1, retryAfter: '3' })
    const [id] = await scheduleDeliveries(k.deps, [notice(f)])

    const [row] = await waitForStatus(k, [id!], 'sent', 15_000)
    const [refused, sent] = pushesTo(k, f.userId)
    expect([refused!.status, sent!.status]).toEqual([429, 200])
    expect(sent!.at - refused!.at).toBeGreaterThanOrEqual(3_000)
    expect(row!.attempts).toBe(2)
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })
})

describe('rateLimitWaitMs', () => {
  it('doubles from the first wait up to the cap, jittered down by up to half', () => {
    const low = () => 0
    const high = () => 1 - Number.EPSILON
    const full = [1, 2, 3, 4].map((n) => rateLimitWaitMs(n, null, high))
    expect(full).toEqual([1, 2, 4, 8].map((m) => m * RATE_LIMIT_FIRST_WAIT_MS))
    expect(rateLimitWaitMs(1, null, low)).toBe(RATE_LIMIT_FIRST_WAIT_MS / 2)
    expect(rateLimitWaitMs(40, null, high)).toBe(RATE_LIMIT_MAX_WAIT_MS)
    expect(rateLimitWaitMs(40, null, low)).toBe(RATE_LIMIT_MAX_WAIT_MS / 2)
  })

  it("waits at least LINE's Retry-After (up to an hour) and at least the backoff, jittered up", () => {
    const low = () => 0
    const high = () => 1 - Number.EPSILON
    expect(rateLimitWaitMs(1, 30_000, low)).toBe(30_000)
    expect(rateLimitWaitMs(1, 30_000, high)).toBe(30_000 + RATE_LIMIT_FIRST_WAIT_MS / 2)
    expect(rateLimitWaitMs(3, 0, low)).toBeGreaterThanOrEqual(2_000)
    expect(rateLimitWaitMs(3, 0, high)).toBe(4 * RATE_LIMIT_FIRST_WAIT_MS)
    expect(rateLimitWaitMs(1, 5 * RETRY_AFTER_MAX_MS, low)).toBe(RETRY_AFTER_MAX_MS)
  })
})

describe('retryAfterOf', () => {
  it('reads delta-seconds and HTTP dates, and nothing else', () => {
    const now = Date.parse('2026-12-15T09:00:00Z')
    expect(retryAfterOf('120', now)).toBe(120_000)
    expect(retryAfterOf(' 0 ', now)).toBe(0)
    expect(retryAfterOf('Tue, 15 Dec 2026 09:00:30 GMT', now)).toBe(30_000)
    expect(retryAfterOf('Tue, 15 Dec 2026 08:00:00 GMT', now)).toBe(0)
    expect(retryAfterOf('soon', now)).toBeUndefined()
    // Not delta-seconds nor an IMF-fixdate, though V8's Date.parse takes them (as past dates).
    for (const odd of ['-5', '1.5', '2 5', 'May 2', '2026-12-15T09:00:30Z']) {
      expect(retryAfterOf(odd, now), odd).toBeUndefined()
    }
    expect(retryAfterOf(null, now)).toBeUndefined()
  })
})
