import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ClaimOutcomes } from '../../src/messaging/claim-outcomes.ts'
import { claimOf, SENDING_LEASE_SECONDS } from '../../src/messaging/delivery-claim.repo.ts'
import { sendClaimedDeliveries } from '../../src/messaging/delivery-send.service.ts'
import { claimDeliveriesWithMarketingCounts } from '../../src/messaging/marketing-cap.repo.ts'
import { openSendWindow } from '../../src/messaging/send-window.ts'
import { RATE_LIMITED } from '../../src/sandbox/request-pipeline.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import {
  deliveryRow,
  dueNow,
  PUSH,
  playingWorkers,
  pushesTo,
  sendJob,
  sendTools,
  welcomeId,
} from './support.ts'

/**
 * A reply (the welcome card) whose outcome is unknown is never pushed after it: it may have
 * been delivered (LINE-API.md §2.4). Pushes and multicasts: delivery-retries.test.ts.
 */
describe('delivery retries of a reply', () => {
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

  /** The welcome delivery of this LINE user, once it has `status`. */
  const welcomeWhen = (lineUid: string, status: string) =>
    eventually(async () => {
      const row = await k.deps.db
        .selectFrom('delivery')
        .innerJoin('line_user', 'line_user.customer_id', 'delivery.customer_id')
        .select(['delivery.status', 'delivery.last_error', 'delivery.attempts'])
        .where('line_user.line_uid', '=', lineUid)
        .executeTakeFirstOrThrow()
      expect(row.status).toBe(status)
      return row
    })

  it('a reply that got a 500 is not pushed after it: it may have been delivered', async () => {
    const user = k.line.users.create()
    k.line.failNext({ method: 'POST', path: '/v2/bot/message/reply', status: 500, count: 1 })
    await k.line.users.follow(user.userId)
    const welcome = await welcomeWhen(user.userId, 'failed')
    expect(welcome.last_error).toMatch(/^reply outcome unknown/)
    expect(pushesTo(k, user.userId)).toHaveLength(0)
  })

  it('a reply refused by a rate-limit 429 is tried again after the pause, not pushed', async () => {
    const user = k.line.users.create()
    k.line.failNext({
      method: 'POST',
      path: '/v2/bot/message/reply',
      status: 429,
      body: { message: RATE_LIMITED },
      count: 1,
    })
    await k.line.users.follow(user.userId)
    const welcome = await welcomeWhen(user.userId, 'sent')
    // A push would spend the month's quota on what a reply sends for free.
    expect(welcome.attempts).toBe(2)
    expect(pushesTo(k, user.userId)).toHaveLength(0)
    expect(k.line.inbox(user.userId).map((m) => m.endpoint)).toEqual(['reply'])
    const replies = k.line.requestsTo('POST', '/v2/bot/message/reply')
    expect(replies.map((r) => r.status).slice(-2)).toEqual([429, 200])
  })

  it('a refused reply whose mark could not be written is pushed, and a 500 to the push is retried under its key', async () => {
    const user = k.line.users.create()
    const db = k.deps.db
    await playingWorkers(k, async (send) => {
      await k.line.users.follow(user.userId)
      const id = await welcomeId(k, user.userId)
      // The statement that marks the refused reply fails (as with Postgres away for a moment);
      // the one that stores the push may still mark it.
      await sql`create function refuse_reply_mark() returns trigger language plpgsql as
        $$ begin raise exception 'the reply mark is not written'; end $$`.execute(db)
      await sql`create trigger refuse_reply_mark before update on delivery for each row
        when (old.id = ${sql.lit(id)}::uuid and old.reply_state = 'trying'
          and new.reply_state = 'refused' and new.push_body is not distinct from old.push_body
          and new.multicast_request_id is not distinct from old.multicast_request_id)
        execute function refuse_reply_mark()`.execute(db)
      try {
        k.line.failNext({
          method: 'POST',
          path: '/v2/bot/message/reply',
          status: 400,
          body: { message: 'Invalid reply token' },
          count: 1,
        })
        k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 1 })
        await expect(send([id])).rejects.toThrow(/1 of 1 deliveries failed for now/)
      } finally {
        await sql`drop trigger refuse_reply_mark on delivery`.execute(db)
        await sql`drop function refuse_reply_mark()`.execute(db)
      }
      expect((await deliveryRow(k, id)).status).toBe('pending')

      // The push may have reached LINE: its retry repeats it under the same key, not failed as
      // a reply the worker stopped during.
      await dueNow(k, [id])
      await send([id])
      const row = await deliveryRow(k, id)
      expect([row.status, row.reply_state]).toEqual(['sent', 'refused'])
      const pushes = pushesTo(k, user.userId)
      expect(pushes.map((p) => [p.status, p.headers['x-line-retry-key']])).toEqual([
        [500, row.line_retry_key],
        [200, row.line_retry_key],
      ])
      expect(k.line.inbox(user.userId).map((m) => m.endpoint)).toEqual(['push'])
    })
  })

  it('a reply whose worker stopped before recording it is failed when claimed again, not pushed', async () => {
    const user = k.line.users.create()
    const queue = k.deps.queues.byName.delivery
    const tools = sendTools(k)
    await queue.pause() // this test plays the workers
    try {
      await k.line.users.follow(user.userId)
      const id = await welcomeId(k, user.userId)
      // A worker claims the welcome card and replies, then stops before recording the outcome.
      const claimed = await claimDeliveriesWithMarketingCounts(k.deps.db, [id], 0)
      const recorder = new ClaimOutcomes(k.deps, claimOf(claimed.rows), 0)
      const first = await sendClaimedDeliveries(k.deps, tools, claimed, openSendWindow(), recorder)
      expect(first.outcomes.map((o) => o.status)).toEqual(['sent'])
      // Its lease runs out and another worker claims the row.
      const lapsed = SENDING_LEASE_SECONDS + 60
      await sql`update delivery set updated_at = now() - make_interval(secs => ${lapsed})
        where id = ${id}`.execute(k.deps.db)
      await sendJob(k, tools)([id])

      const row = await deliveryRow(k, id)
      expect([row.status, row.attempts]).toEqual(['failed', 2])
      expect(row.last_error).toMatch(/^reply outcome unknown/)
      expect(k.line.inbox(user.userId).map((m) => m.endpoint)).toEqual(['reply'])
      expect(pushesTo(k, user.userId)).toHaveLength(0)
    } finally {
      await queue.resume()
    }
  })
})
