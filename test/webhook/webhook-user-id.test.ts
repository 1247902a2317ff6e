import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/platform/logger.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'
import { eventually } from '../support/wait.ts'

// LINE signs what it sends, so a LINE user id that is not one (U and 32 lowercase hex digits,
// LINE-API.md §4) is unlikely; one must still not reach LINE (every call with it fails), nor
// cost the other events of its request (a 400 would: LINE does not send them again).

let k: TestKizuna
const logs = logSink()

beforeAll(async () => {
  k = await startTestKizuna({}, { log: createLogger('info', logs.sink) })
})
afterAll(async () => {
  await k.stopAll()
})

const eventRow = (webhookEventId: string) =>
  k.deps.db
    .selectFrom('webhook_event')
    .select(['status', 'outcome', 'last_error'])
    .where('webhook_event_id', '=', webhookEventId)
    .executeTakeFirstOrThrow()

describe('POST /webhooks/line with an event whose source.userId is not a LINE user id', () => {
  it('stores and fails that event, never calls LINE with it, and applies the others', async () => {
    const good = k.line.users.create()
    const badUid = `U${randomUUID().replaceAll('-', '').toUpperCase()}`
    const bad = k.line.buildEvent('follow', badUid, {})
    const followed = k.line.buildEvent('follow', good.userId, {})
    const res = await k.line.deliverWebhook([bad, followed])
    expect(res.status).toBe(200)

    await eventually(async () => {
      expect(await eventRow(followed.webhookEventId)).toMatchObject({ status: 'done' })
      expect((await eventRow(bad.webhookEventId)).status).not.toBe('pending')
    })
    expect(await eventRow(followed.webhookEventId)).toMatchObject({ outcome: 'handled' })
    expect(await eventRow(bad.webhookEventId)).toEqual({
      status: 'failed',
      outcome: null,
      last_error: 'source.userId: not a LINE user id (U and 32 lowercase hex digits)',
    })
    // The good follow's profile and welcome went to LINE; nothing went with the bad id.
    await eventually(async () => {
      const row = await k.deps.db
        .selectFrom('line_user')
        .select('profile_fetched_at')
        .where('line_uid', '=', good.userId)
        .executeTakeFirstOrThrow()
      expect(row.profile_fetched_at).not.toBeNull()
      expect(k.line.requestsTo('POST', /\/v2\/bot\/message\//).length).toBeGreaterThan(0)
    })
    const mentions = (text: string) => text.toLowerCase().includes(badUid.slice(1).toLowerCase())
    expect(k.line.requests.filter((r) => mentions(JSON.stringify(r)))).toEqual([])
    const friends = await k.deps.db
      .selectFrom('line_user')
      .select('id')
      .where('line_uid', '=', badUid)
      .execute()
    expect(friends).toEqual([])
    // Logged by the event's id, never the LINE user id.
    expect(logs.lines.filter(mentions)).toEqual([])
    expect(logs.entries()).toContainEqual(
      expect.objectContaining({ webhookEventId: bad.webhookEventId, type: 'follow' }),
    )
  })
})
