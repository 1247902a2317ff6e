import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import {
  campaignInbox,
  deliveryRow,
  deliveryRows,
  dueNow,
  multicastsTo,
  newFriend,
  notices,
  PUSH,
  pushesTo,
  sendJob,
  sendTools,
  waitForStatus,
  welcomeId,
  withWrongLineToken,
} from './support.ts'

const REPLY = '/v2/bot/message/reply'

/**
 * LINE refusing the channel rather than the request: a 401 (the channel access token, say
 * reissued in the LINE console while Kizuna still has the old one) or a 403 (the channel's plan
 * or account). LINE took nothing, and every delivery would be refused alike until an operator
 * fixes it: the deliveries wait (backed off, not failed), the row and one error line name what
 * to check, and once LINE takes the channel again they go, once each.
 */
describe('deliveries while LINE refuses the channel (401, 403)', () => {
  let k: TestKizuna
  let dropDatabase: () => Promise<void>
  const closing: (() => Promise<void>)[] = []

  beforeAll(async () => {
    // A database of its own: the test sweeps.
    const database = await createPrivateDatabase()
    dropDatabase = database.drop
    k = await startTestKizuna({
      DATABASE_URL: database.url,
      QUIET_HOURS: '',
      MARKETING_WEEKLY_CAP: '0',
    })
  })
  afterAll(async () => {
    for (const close of closing) await close()
    await k?.stopAll()
    await dropDatabase?.()
  })
  beforeEach(() => {
    k.line.clearFailures()
  })

  /**
   * A worker still running with the old token (the real workers have the right one, as after a
   * restart): its send job, and what it logged.
   */
  function oldTokenWorker() {
    const logs = logSink()
    const log = createLogger('info', logs.sink)
    const wrong = withWrongLineToken({ ...k.deps, log } as Deps)
    closing.push(wrong.close)
    return {
      send: sendJob(k, sendTools(k), wrong.deps),
      logged: () => logs.lines.join(''),
      errors: () => logs.entries().filter((l) => Number(l.level) >= 50),
    }
  }

  /** `fn` with the delivery queue paused: the real workers take nothing meanwhile. */
  async function whilePaused(fn: () => Promise<void>): Promise<void> {
    const queue = k.deps.queues.byName.delivery
    await queue.pause()
    try {
      await fn()
    } finally {
      await queue.resume()
    }
  }

  it('a push refused for the token waits with its key unused, names LINE_CHANNEL_ACCESS_TOKEN, then goes once', async () => {
    const f = await newFriend(k)
    const [id] = (await notices(k.deps, [f.customerId])) as [string]
    const old = oldTokenWorker()
    const before = Date.now()

    await old.send([id])

    const row = await deliveryRow(k, id)
    expect(row.status).toBe('pending')
    expect(row.last_error).toMatch(/^LINE 401: .*LINE_CHANNEL_ACCESS_TOKEN/)
    // Backed off, not retried at once: a later job of its own (or the sweeper) takes it.
    expect(row.send_after.getTime()).toBeGreaterThan(before)
    expect(row.retry_at).toBeNull()
    // LINE took nothing under the key: no first call to count or expire, no push to repeat.
    expect(row.line_first_call_at).toBeNull()
    expect(row.push_body).toBeNull()
    expect(pushesTo(k, f.userId).map((p) => p.status)).toEqual([401])
    // One error line for the operator, naming the variable; no LINE user id in it.
    expect(old.errors()).toHaveLength(1)
    expect(old.errors()[0]!.msg).toMatch(/LINE_CHANNEL_ACCESS_TOKEN/)
    expect(old.logged()).not.toContain(f.userId)

    // The workers with the right token take its delayed job: sent once, under its key.
    await waitForStatus(k, [id], 'sent', 15_000)
    const pushes = pushesTo(k, f.userId)
    expect(pushes.map((p) => [p.status, p.headers['x-line-retry-key']])).toEqual([
      [401, row.line_retry_key],
      [200, row.line_retry_key],
    ])
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })

  it('a multicast refused for the token waits whole, logged once however many jobs, then goes in one call', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    const ids = await notices(
      k.deps,
      friends.map((f) => f.customerId),
    )
    const old = oldTokenWorker()

    await old.send(ids)
    for (const row of await deliveryRows(k, ids)) {
      expect(row.status).toBe('pending')
      expect(row.last_error).toMatch(/LINE_CHANNEL_ACCESS_TOKEN/)
      expect(row.line_first_call_at).toBeNull()
    }
    // Another job of the same worker, soon after: not one more error line per job.
    const other = await newFriend(k)
    const [otherId] = (await notices(k.deps, [other.customerId])) as [string]
    await old.send([otherId])
    expect((await deliveryRow(k, otherId)).status).toBe('pending')
    expect(old.errors()).toHaveLength(1)

    await waitForStatus(k, [...ids, otherId], 'sent', 15_000)
    for (const f of friends) {
      expect(multicastsTo(k, f.userId).map((m) => m.status)).toEqual([401, 200])
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
    }
    expect(pushesTo(k, other.userId).map((p) => p.status)).toEqual([401, 200])
  })

  /**
   * A new friend's welcome (a reply), tried by a worker with the old token while the queue is
   * paused (the test plays the workers): it waits, its token unspent. Then `test`.
   */
  function welcomeRefused(
    test: (w: {
      userId: string
      id: string
      old: ReturnType<typeof oldTokenWorker>
    }) => Promise<void>,
  ): Promise<void> {
    return whilePaused(async () => {
      const user = k.line.users.create()
      await k.line.users.follow(user.userId)
      const id = await welcomeId(k, user.userId)
      const old = oldTokenWorker()
      await old.send([id])

      const row = await deliveryRow(k, id)
      expect(row.status).toBe('pending')
      expect(row.last_error).toMatch(/^LINE 401: .*LINE_CHANNEL_ACCESS_TOKEN/)
      // Not marked refused: a push is not its only way now.
      expect(row.reply_state).toBeNull()
      const replies = k.line.requestsTo('POST', REPLY)
      expect(replies.filter((r) => r.status === 401)).not.toHaveLength(0)
      expect(pushesTo(k, user.userId)).toHaveLength(0)
      await test({ userId: user.userId, id, old })
    })
  }

  it('a reply refused for the token keeps its token unspent: it is replied to once the token is right', async () => {
    await welcomeRefused(async ({ userId, id }) => {
      await dueNow(k, [id])
      await sendJob(k)([id])
      expect((await deliveryRow(k, id)).status).toBe('sent')
      expect(k.line.inbox(userId).map((m) => m.endpoint)).toEqual(['reply'])
      expect(pushesTo(k, userId)).toHaveLength(0)
    })
  })

  it('a reply whose token went stale meanwhile is pushed, and that push waits too, not failed', async () => {
    await welcomeRefused(async ({ userId, id, old }) => {
      // The token is stale by its next try, still with the old token: the push is refused too.
      await sql`update delivery set send_after = now(), reply_token_expires_at = now()
        where id = ${id}`.execute(k.deps.db)
      await old.send([id])
      const row = await deliveryRow(k, id)
      expect(row.status).toBe('pending')
      expect(row.last_error).toMatch(/^LINE 401: .*LINE_CHANNEL_ACCESS_TOKEN/)
      expect(row.line_first_call_at).toBeNull()
      expect(pushesTo(k, userId).map((p) => p.status)).toEqual([401])

      await dueNow(k, [id])
      await sendJob(k)([id])
      expect((await deliveryRow(k, id)).status).toBe('sent')
      expect(pushesTo(k, userId).map((p) => p.status)).toEqual([401, 200])
      expect(k.line.inbox(userId).map((m) => m.endpoint)).toEqual(['push'])
    })
  })

  it('a row whose delayed job was lost is queued by the sweeper', async () => {
    const queue = k.deps.queues.byName.delivery
    const f = await newFriend(k)
    const [id] = (await notices(k.deps, [f.customerId])) as [string]
    await whilePaused(async () => {
      await oldTokenWorker().send([id])
      expect((await deliveryRow(k, id)).status).toBe('pending')
      // Its delayed job (its retry, backed off) is lost: Redis emptied, say.
      const retries = (await queue.getJobs(['delayed'])).filter((job) =>
        (job.data as { deliveryIds: string[] }).deliveryIds.includes(id),
      )
      expect(retries).toHaveLength(1)
      await retries[0]!.remove()
    })
    await sql`update delivery set send_after = now() - interval '1 second',
      updated_at = now() - interval '1 second' where id = ${id}`.execute(k.deps.db)

    expect((await sweepOnce(k.deps, 0)).deliveries).toBe(1)
    await waitForStatus(k, [id], 'sent', 15_000)
    expect(pushesTo(k, f.userId).map((p) => p.status)).toEqual([401, 200])
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })

  it('a 403 (the plan or account) waits the same way, and goes once LINE allows it', async () => {
    const f = await newFriend(k)
    const [id] = (await notices(k.deps, [f.customerId])) as [string]
    k.line.failNext({
      method: 'POST',
      path: PUSH,
      status: 403,
      count: 1,
      body: { message: 'Access to this API is not available for your account' },
      match: (r) => (r.body as { to?: string }).to === f.userId,
    })
    await whilePaused(() => sendJob(k)([id]))
    const row = await deliveryRow(k, id)
    expect(row.status).toBe('pending')
    expect(row.last_error).toMatch(/^LINE 403: .*(plan|account)/)
    expect(row.line_first_call_at).toBeNull()

    await waitForStatus(k, [id], 'sent', 15_000)
    expect(pushesTo(k, f.userId).map((p) => p.status)).toEqual([403, 200])
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })
})
