import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually, eventuallyProcessed } from '../support/wait.ts'

let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k.stopAll()
})

const lineUser = (lineUid: string) =>
  k.deps.db.selectFrom('line_user').selectAll().where('line_uid', '=', lineUid).executeTakeFirst()

const deliveryKinds = async (lineUid: string) =>
  (
    await k.deps.db
      .selectFrom('delivery')
      .innerJoin('line_user', 'line_user.id', 'delivery.line_user_id')
      .select(['delivery.kind', 'delivery.status'])
      .where('line_user.line_uid', '=', lineUid)
      .orderBy('delivery.created_at')
      .execute()
  ).map((d) => `${d.kind}:${d.status}`)

/** Delivers the events one request each, each processed before the next goes. */
async function deliverInTurn(events: { webhookEventId: string }[]) {
  for (const event of events) {
    expect((await k.line.deliverWebhook([event as never])).status).toBe(200)
    await eventuallyProcessed(k.deps.db, event.webhookEventId)
  }
}

/**
 * A block at `t`, the unblock a second later and "card" sent a second after that. LINE does not
 * promise the follow says `isUnblocked`.
 */
function blockAndComeBack(lineUid: string, t: number, isUnblocked = true) {
  return {
    unfollow: k.line.buildEvent('unfollow', lineUid, {}, { timestamp: t }),
    follow: k.line.buildEvent('follow', lineUid, { isUnblocked } as never, {
      timestamp: t + 1_000,
    }),
    text: k.line.buildEvent('text', lineUid, { text: 'card' }, { timestamp: t + 2_000 }),
  }
}

/**
 * A blocker cannot talk to the account: their unblock (a follow) comes first, but its webhook may
 * arrive after the message they send just then. The message is the proof they are back.
 */
describe('a message that overtakes the follow of someone who blocked us', () => {
  it('answers someone unknown whose stored unfollow is older, fetches their profile, and welcomes them on the follow', async () => {
    const user = k.line.users.create({ displayName: '鈴木 次郎' })
    user.friendship = 'friend'
    const t = Date.now() - 30_000
    const { unfollow, follow, text } = blockAndComeBack(user.userId, t)
    await deliverInTurn([unfollow, text])

    await eventually(async () => {
      const row = await lineUser(user.userId)
      expect(row?.status).toBe('friend')
      expect(row?.display_name).toBe('鈴木 次郎')
      expect(await deliveryKinds(user.userId)).toEqual(['member-card:sent'])
    })
    expect(k.line.inbox(user.userId).map((m) => m.endpoint)).toEqual(['reply'])

    // The follow still decides: newer than what the message proved, it welcomes (never seen
    // following before: not "back"), and an older unfollow arriving late changes nothing.
    await deliverInTurn([follow])
    await eventually(async () =>
      expect(await deliveryKinds(user.userId)).toEqual(['member-card:sent', 'welcome:sent']),
    )
    const late = k.line.buildEvent('unfollow', user.userId, {}, { timestamp: t - 1_000 })
    await deliverInTurn([late])
    const row = await lineUser(user.userId)
    expect(row?.status).toBe('friend')
    expect(row?.status_changed_at.getTime()).toBe(t + 1_000)
  })

  it.each([true, false])(
    'answers a known friend whose block is older than the message, before their follow arrives (isUnblocked: %s), and welcomes them back on it',
    async (isUnblocked) => {
      const user = k.line.users.create()
      await k.line.users.follow(user.userId)
      await eventually(async () =>
        expect(await deliveryKinds(user.userId)).toEqual(['welcome:sent']),
      )
      const t = Date.now()
      const { unfollow, follow, text } = blockAndComeBack(user.userId, t, isUnblocked)
      await deliverInTurn([unfollow, text])

      await eventually(async () => {
        expect((await lineUser(user.userId))?.status).toBe('friend')
        expect(await deliveryKinds(user.userId)).toEqual(['welcome:sent', 'member-card:sent'])
      })

      await deliverInTurn([follow])
      await eventually(async () =>
        expect(await deliveryKinds(user.userId)).toEqual([
          'welcome:sent',
          'member-card:sent',
          'welcome-back:sent',
        ]),
      )
      expect((await lineUser(user.userId))?.status_changed_at.getTime()).toBe(t + 1_000)
    },
  )

  it('still creates blocked someone whose unfollow is newer than their message', async () => {
    const user = k.line.users.create()
    const t = Date.now() - 10_000
    const unfollow = k.line.buildEvent('unfollow', user.userId, {}, { timestamp: t })
    const text = k.line.buildEvent('text', user.userId, { text: 'card' }, { timestamp: t - 1_000 })
    await deliverInTurn([unfollow, text])
    const row = await lineUser(user.userId)
    expect(row?.status).toBe('blocked')
    expect(row?.status_changed_at.getTime()).toBe(t)
  })
})

/** Someone who follows, then blocks us at the time returned (their follow is welcomed first). */
async function friendWhoBlocked() {
  const user = k.line.users.create()
  await k.line.users.follow(user.userId)
  await eventually(async () => expect(await deliveryKinds(user.userId)).toEqual(['welcome:sent']))
  const t = Date.now()
  await deliverInTurn([k.line.buildEvent('unfollow', user.userId, {}, { timestamp: t })])
  expect((await lineUser(user.userId))?.status).toBe('blocked')
  return { user, t }
}

/** A sticker: a message event with no text. */
function sticker(lineUid: string, timestamp: number, source?: object) {
  const event = k.line.buildEvent('text', lineUid, { text: '' }, { timestamp })
  return {
    ...event,
    ...(source ? { source } : {}),
    message: { type: 'sticker', id: `${timestamp}`, packageId: '446', stickerId: '1988' },
  } as typeof event
}

describe('a message nothing answers, from someone recorded as blocked', () => {
  it.each([
    [
      'a text no keyword answers',
      (uid: string, at: number) =>
        k.line.buildEvent('text', uid, { text: 'こんにちは' }, { timestamp: at }),
    ],
    ['a sticker', (uid: string, at: number) => sticker(uid, at)],
    [
      'a postback no route takes',
      (uid: string, at: number) =>
        k.line.buildEvent('postback', uid, { data: 'action=nothing' }, { timestamp: at }),
    ],
  ])('shows they are back: %s sent after the block', async (_, build) => {
    const { user, t } = await friendWhoBlocked()
    await deliverInTurn([build(user.userId, t + 1_000)])
    const row = await lineUser(user.userId)
    expect(row?.status).toBe('friend')
    expect(row?.status_changed_at.getTime()).toBe(t + 1)
  })

  it('leaves them blocked for a message in a group, one in standby, or one sent before the block', async () => {
    const { user, t } = await friendWhoBlocked()
    const inGroup = { type: 'group', groupId: `C${'0'.repeat(32)}`, userId: user.userId }
    await deliverInTurn([
      sticker(user.userId, t + 1_000, inGroup),
      k.line.buildEvent(
        'text',
        user.userId,
        { text: 'hi' },
        { timestamp: t + 2_000, mode: 'standby' },
      ),
      k.line.buildEvent('text', user.userId, { text: 'hi' }, { timestamp: t - 1_000 }),
    ])
    const row = await lineUser(user.userId)
    expect(row?.status).toBe('blocked')
    expect(row?.status_changed_at.getTime()).toBe(t)
  })
})
