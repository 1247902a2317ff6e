import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConsent } from '../../src/consent/consent.service.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'

let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k.stopAll()
})

const statusOf = async (webhookEventId: string) =>
  (
    await k.deps.db
      .selectFrom('webhook_event')
      .select('status')
      .where('webhook_event_id', '=', webhookEventId)
      .executeTakeFirst()
  )?.status

describe('webhook.process-events', () => {
  it("applies each user's events in time order, users side by side", async () => {
    const users = Array.from({ length: 5 }, () => {
      const user = k.line.users.create()
      user.friendship = 'friend'
      return user
    })
    const t = Date.now()
    const pairs = users.map((u) => ({
      optout: k.line.buildEvent('postback', u.userId, { data: 'action=optout' }, { timestamp: t }),
      optin: k.line.buildEvent(
        'postback',
        u.userId,
        { data: 'action=optin' },
        { timestamp: t + 1 },
      ),
    }))
    // One request; the last user's pair arrives in reverse order (LINE does not promise order).
    const events = pairs.flatMap((p, i) => (i === 4 ? [p.optin, p.optout] : [p.optout, p.optin]))
    const [held, ...others] = pairs

    // The first user's opt-out is held up (its row locked, as by a slow transaction) before
    // the job starts: their opt-in must wait for it, the other users must not.
    const webhookQueue = k.deps.queues.byName.webhook
    await webhookQueue.pause()
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await client.connect()
    try {
      expect((await k.line.deliverWebhook(events)).status).toBe(200)
      await client.query('begin')
      await client.query('select 1 from webhook_event where webhook_event_id = $1 for update', [
        held!.optout.webhookEventId,
      ])
      await webhookQueue.resume()
      await eventually(async () => {
        for (const p of others) {
          expect(await statusOf(p.optout.webhookEventId)).toBe('done')
          expect(await statusOf(p.optin.webhookEventId)).toBe('done')
        }
      })
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(await statusOf(held!.optin.webhookEventId)).toBe('pending')
    } finally {
      await client.query('commit').catch(() => {})
      await client.end()
    }

    await eventually(async () => {
      for (const p of pairs) expect(await statusOf(p.optin.webhookEventId)).toBe('done')
    })
    for (const user of users) {
      const lineUser = await k.deps.db
        .selectFrom('line_user')
        .select('customer_id')
        .where('line_uid', '=', user.userId)
        .executeTakeFirstOrThrow()
      const consent = await loadConsent(k.deps.db, lineUser.customer_id)
      expect({ user: user.userId, line: consent.marketing.line }).toEqual({
        user: user.userId,
        line: true,
      })
    }
  })
})

describe('after an event commits', () => {
  it('still queues the welcome and the menu link when the profile fetch cannot be queued', async () => {
    // Redis refuses every job of the profile queue (its job counter is not a number), as a
    // blip would refuse one; the other queues work.
    const identity = k.deps.queues.byName.identity
    const counter = identity.keys.id ?? `${k.deps.queues.prefix}:identity:id`
    const before = await k.deps.redis.get(counter)
    await k.deps.redis.set(counter, 'broken')
    try {
      const user = k.line.users.create()
      await k.line.users.follow(user.userId)
      await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
      const lineUser = await k.deps.db
        .selectFrom('line_user')
        .select('id')
        .where('line_uid', '=', user.userId)
        .executeTakeFirstOrThrow()
      const menuJobs = await k.deps.queues.byName.richmenu.getJobs([
        'wait',
        'active',
        'delayed',
        'completed',
        'failed',
      ])
      expect(
        menuJobs.some((j) =>
          (j.data as { lineUserIds?: string[] }).lineUserIds?.includes(lineUser.id),
        ),
      ).toBe(true)
    } finally {
      if (before === null) await k.deps.redis.del(counter)
      else await k.deps.redis.set(counter, before)
    }
  })
})
