import type { webhook } from '@line/bot-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'

let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k.stopAll()
})

const outcomeOf = async (webhookEventId: string) =>
  (
    await k.deps.db
      .selectFrom('webhook_event')
      .select('outcome')
      .where('webhook_event_id', '=', webhookEventId)
      .executeTakeFirst()
  )?.outcome

/** The event as LINE sends it from a group chat the account was added to (LINE-API.md §1.4). */
function inGroup(event: webhook.Event, groupId: string): webhook.Event {
  const userId = (event.source as webhook.UserSource).userId
  return { ...event, source: { type: 'group', groupId, userId } } as webhook.Event
}

describe('keyword and postback routing from a group chat', () => {
  it("never answers a group member's keyword or postback in the group, nor makes them a friend", async () => {
    // A group member who never added the account: LINE still gives their user id in a group.
    const member = k.line.users.create()
    const groupId = `C${'0'.repeat(31)}1`
    const card = inGroup(k.line.buildEvent('text', member.userId, { text: '会員証' }), groupId)
    const link = inGroup(
      k.line.buildEvent('postback', member.userId, { data: 'action=link' }),
      groupId,
    )
    k.line.clearRequests()
    expect((await k.line.deliverWebhook([card, link])).status).toBe(200)
    await eventually(async () => {
      expect(await outcomeOf(card.webhookEventId)).toEqual(expect.any(String))
      expect(await outcomeOf(link.webhookEventId)).toEqual(expect.any(String))
    })
    // Give a queued reply time to go out, had one been written.
    await new Promise((resolve) => setTimeout(resolve, 500))

    // Nothing for this member went to LINE: a member card (barcode, points) or an account-link
    // page posted in a group is seen by everyone in it.
    expect(k.line.requestsTo('POST', '/v2/bot/message/reply')).toEqual([])
    expect(k.line.requestsTo('POST', `/v2/bot/user/${member.userId}/linkToken`)).toEqual([])
    const deliveries = await k.deps.db
      .selectFrom('delivery')
      .innerJoin('line_user', 'line_user.id', 'delivery.line_user_id')
      .select('delivery.kind')
      .where('line_user.line_uid', '=', member.userId)
      .execute()
    expect(deliveries).toEqual([])
    // Talking in a group does not make someone a friend of the account.
    const lineUser = await k.deps.db
      .selectFrom('line_user')
      .select('status')
      .where('line_uid', '=', member.userId)
      .executeTakeFirst()
    expect(lineUser).toBeUndefined()
    expect(await outcomeOf(card.webhookEventId)).toBe('ignored')
    expect(await outcomeOf(link.webhookEventId)).toBe('ignored')
  })
})
