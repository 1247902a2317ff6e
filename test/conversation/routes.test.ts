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
      .select(['status', 'outcome'])
      .where('webhook_event_id', '=', webhookEventId)
      .executeTakeFirst()
  )?.outcome

async function friend() {
  const user = k.line.users.create()
  await k.line.users.follow(user.userId)
  await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
  return user
}

describe('keyword and postback routing', () => {
  it('answers the help keyword in any width or case', async () => {
    const user = await friend()
    const result = await k.line.users.sendText(user.userId, '  ＨＥＬＰ ')
    await eventually(async () => {
      expect(await outcomeOf(result.body.events[0]!.webhookEventId)).toBe('handled')
      expect(k.line.inbox(user.userId)).toHaveLength(2)
    })
    const reply = k.line.inbox(user.userId)[1]
    expect(reply?.endpoint).toBe('reply')
    expect(JSON.stringify(reply?.message)).toContain('ヘルプ')
  })

  it("answers the menu's Help with what Kizuna does and buttons for the card and offers on/off", async () => {
    const user = await friend()
    await k.line.users.postback(user.userId, 'action=help')
    await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(2))
    const message = k.line.inbox(user.userId)[1]?.message as {
      text: string
      quickReply?: { items: { action: { data?: string } }[] }
    }
    // Not "send help to see this menu again": say what the menu and keywords do.
    expect(message.text).toContain('会員証')
    expect(message.text).toMatch(/offers/)
    // A menu without "Get offers" (vip) still leaves a way back to offers.
    expect(message.quickReply?.items.map((i) => i.action.data)).toEqual([
      'action=card',
      'action=optout&category=marketing',
      'action=optin&category=marketing',
    ])
  })

  it('routes a postback on its action and logs an unknown one without replying', async () => {
    const user = await friend()
    const help = await k.line.users.postback(user.userId, 'action=help&from=richmenu')
    const unknown = await k.line.users.postback(user.userId, 'action=teleport')
    const text = await k.line.users.sendText(user.userId, 'what time do you open?')
    await eventually(async () => {
      expect(await outcomeOf(help.body.events[0]!.webhookEventId)).toBe('handled')
      expect(await outcomeOf(unknown.body.events[0]!.webhookEventId)).toBe('unrouted')
      expect(await outcomeOf(text.body.events[0]!.webhookEventId)).toBe('unrouted')
    })
    // Deliveries are written in the same transaction as the outcome: only welcome and help.
    const kinds = await k.deps.db
      .selectFrom('delivery')
      .innerJoin('line_user', 'line_user.id', 'delivery.line_user_id')
      .select('delivery.kind')
      .where('line_user.line_uid', '=', user.userId)
      .orderBy('delivery.created_at')
      .execute()
    expect(kinds.map((d) => d.kind)).toEqual(['welcome', 'help'])
  })
})
