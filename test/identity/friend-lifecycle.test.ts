import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { eventually, eventuallyProcessed } from '../support/wait.ts'

let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k.stopAll()
})
beforeEach(() => {
  k.line.clearRequests()
  k.line.clearFailures()
})

const lineUser = (lineUid: string) =>
  k.deps.db.selectFrom('line_user').selectAll().where('line_uid', '=', lineUid).executeTakeFirst()

const deliveriesOf = (lineUid: string) =>
  k.deps.db
    .selectFrom('delivery')
    .innerJoin('line_user', 'line_user.id', 'delivery.line_user_id')
    .selectAll('delivery')
    .where('line_user.line_uid', '=', lineUid)
    .orderBy('delivery.created_at')
    .execute()

const countCustomers = async () =>
  Number(
    (
      await k.deps.db
        .selectFrom('customer')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  )

const outcomeOf = async (webhookEventId: string) =>
  (
    await k.deps.db
      .selectFrom('webhook_event')
      .select('outcome')
      .where('webhook_event_id', '=', webhookEventId)
      .executeTakeFirst()
  )?.outcome ?? null

/** A user LINE counts as a friend, whose follow event the test builds and sends itself. */
function friendOnLine() {
  const user = k.line.users.create()
  user.friendship = 'friend'
  return user
}

describe('friend lifecycle', () => {
  it('greets a new friend by their LINE name even when the card outruns the profile job, with one profile call', async () => {
    // The profile job held back: the welcome card goes first, as on embedded PGlite.
    const identity = k.deps.queues.byName.identity
    await identity.pause()
    try {
      const user = k.line.users.create({ displayName: '佐藤 一郎' })
      expect((await k.line.users.follow(user.userId))?.status).toBe(200)
      await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
      const card = JSON.stringify(k.line.inbox(user.userId)[0]?.message)
      expect(card).toContain('佐藤 一郎')
      expect(card).not.toContain('Member 様')
      const profileCalls = () => k.line.requestsTo('GET', `/v2/bot/profile/${user.userId}`)
      expect(profileCalls()).toHaveLength(1)

      // The job, let go, finds the profile fetched and asks LINE nothing more.
      await identity.resume()
      await eventually(async () => {
        const counts = await identity.getJobCounts('waiting', 'active', 'completed')
        expect((counts.waiting ?? 0) + (counts.active ?? 0)).toBe(0)
        expect(counts.completed ?? 0).toBeGreaterThan(0)
      })
      expect(profileCalls()).toHaveLength(1)
      expect((await lineUser(user.userId))?.display_name).toBe('佐藤 一郎')
    } finally {
      await identity.resume()
    }
  })

  it('follow creates the customer and LINE identity, fetches the profile and replies the member card', async () => {
    const user = k.line.users.create({ displayName: '山田 花子', language: 'ja' })
    expect((await k.line.users.follow(user.userId))?.status).toBe(200)

    await eventually(async () => {
      const row = await lineUser(user.userId)
      expect(row?.status).toBe('friend')
      expect(row?.display_name).toBe('山田 花子')
      expect(row?.language).toBe('ja')
      expect(row?.profile_fetched_at).not.toBeNull()
      const [welcome] = await deliveriesOf(user.userId)
      expect(welcome?.status).toBe('sent')
    })
    const row = (await lineUser(user.userId))!
    const customer = await k.deps.db
      .selectFrom('customer')
      .selectAll()
      .where('id', '=', row.customer_id)
      .executeTakeFirstOrThrow()
    expect(customer.display_name).toBe('山田 花子')

    const card = await k.deps.db
      .selectFrom('identity')
      .select('value')
      .where('customer_id', '=', row.customer_id)
      .where('kind', '=', 'member_card')
      .executeTakeFirstOrThrow()
    const inbox = k.line.inbox(user.userId)
    expect(inbox).toHaveLength(1)
    expect(inbox[0]?.endpoint).toBe('reply')
    expect(inbox[0]?.message.type).toBe('flex')
    expect(inbox[0]?.message.altText).toContain('友だち追加ありがとうございます')
    expect(JSON.stringify(inbox[0]?.message)).toContain(card.value)
    expectNoRejectedRequests(k.line)
  })

  it('stores a LINE profile whose name holds a NUL character, the NUL as U+FFFD (Postgres text has none)', async () => {
    const user = k.line.users.create({ displayName: 'Taro\u0000Y', language: 'ja' })
    expect((await k.line.users.follow(user.userId))?.status).toBe(200)
    await eventually(async () => {
      const row = await lineUser(user.userId)
      expect(row?.profile_fetched_at).not.toBeNull()
      expect(row?.display_name).toBe('Taro\uFFFDY')
    })
    const row = (await lineUser(user.userId))!
    const customer = await k.deps.db
      .selectFrom('customer')
      .select('display_name')
      .where('id', '=', row.customer_id)
      .executeTakeFirstOrThrow()
    expect(customer.display_name).toBe('Taro\uFFFDY')
  })

  it('pushes with a stored retry key when the reply token is stale, reusing it on retry', async () => {
    const user = friendOnLine()
    const event = k.line.buildEvent('follow', user.userId, {}, { timestamp: Date.now() })
    // The reply token has already been used by someone else: reply fails, push takes over.
    k.line.context.state.replyTokens.get((event as { replyToken: string }).replyToken)!.used = true
    k.line.failNext({ method: 'POST', path: '/v2/bot/message/push', status: 500, count: 1 })
    expect((await k.line.deliverWebhook([event])).status).toBe(200)

    await eventually(async () => {
      const [welcome] = await deliveriesOf(user.userId)
      expect(welcome?.status).toBe('sent')
      expect(welcome?.attempts).toBe(2)
    })
    const [welcome] = await deliveriesOf(user.userId)
    const pushes = k.line
      .requestsTo('POST', '/v2/bot/message/push')
      .filter((r) => (r.body as { to?: string }).to === user.userId)
    expect(pushes.map((r) => r.status)).toEqual([500, 200])
    expect(pushes[0]?.headers['x-line-retry-key']).toBe(welcome?.line_retry_key)
    expect(pushes[1]?.headers['x-line-retry-key']).toBe(welcome?.line_retry_key)
    expect(k.line.inbox(user.userId)).toHaveLength(1)
  })

  it('pushes, without trying the reply token, a redelivered follow older than 20 minutes', async () => {
    const user = friendOnLine()
    // LINE sent it 25 minutes ago and we did not answer; its first copy reaching us is a
    // redelivery, whose reply token LINE no longer takes (LINE-API.md §2.2).
    const at = Date.now() - 25 * 60_000
    const event = k.line.buildEvent('follow', user.userId, {}, { timestamp: at })
    const token = (event as { replyToken: string }).replyToken
    k.line.context.state.replyTokens.get(token)!.expiresAt = at + 60_000
    expect((await k.line.deliverWebhook([event], { redelivery: true })).status).toBe(200)

    await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
    expect(k.line.inbox(user.userId)[0]?.endpoint).toBe('push')
    const replies = k.line
      .requestsTo('POST', '/v2/bot/message/reply')
      .filter((r) => (r.body as { replyToken?: string }).replyToken === token)
    expect(replies).toEqual([])
  })

  it('counts a 409 "retry key already accepted" as sent, without a second message', async () => {
    const user = friendOnLine()
    const event = k.line.buildEvent('follow', user.userId, {})
    k.line.context.state.replyTokens.get((event as { replyToken: string }).replyToken)!.used = true
    expect((await k.line.deliverWebhook([event])).status).toBe(200)
    await eventually(async () => {
      const [welcome] = await deliveriesOf(user.userId)
      expect(welcome?.status).toBe('sent')
    })
    // As if LINE accepted the push but its answer was lost: the same delivery is sent again
    // (the request it stored) with the same retry key, LINE answers 409, and that counts as sent.
    const [welcome] = await deliveriesOf(user.userId)
    const [push] = k.line
      .requestsTo('POST', '/v2/bot/message/push')
      .filter((r) => (r.body as { to?: string }).to === user.userId)
    await k.deps.db
      .updateTable('delivery')
      .set({ status: 'pending', push_body: JSON.stringify(push!.body) })
      .where('id', '=', welcome!.id)
      .execute()
    await k.deps.queues.enqueue(
      'messaging.send-deliveries',
      { deliveryIds: [welcome!.id] },
      { jobId: `delivery-${welcome!.id}-replay` },
    )
    await eventually(async () => {
      const pushes = k.line
        .requestsTo('POST', '/v2/bot/message/push')
        .filter((r) => (r.body as { to?: string }).to === user.userId)
      expect(pushes.map((r) => r.status)).toEqual([200, 409])
      const [again] = await deliveriesOf(user.userId)
      expect(again?.status).toBe('sent')
    })
    expect(k.line.inbox(user.userId)).toHaveLength(1)
  })

  it('unfollow marks the friend blocked; follow with isUnblocked restores it and welcomes back', async () => {
    const user = k.line.users.create()
    await k.line.users.follow(user.userId)
    await eventually(async () => expect((await lineUser(user.userId))?.status).toBe('friend'))
    await k.line.users.block(user.userId)
    await eventually(async () => expect((await lineUser(user.userId))?.status).toBe('blocked'))
    const result = (await k.line.users.follow(user.userId))!
    expect((result.body.events[0] as { follow: { isUnblocked: boolean } }).follow.isUnblocked).toBe(
      true,
    )
    await eventually(async () => {
      expect((await lineUser(user.userId))?.status).toBe('friend')
      const kinds = (await deliveriesOf(user.userId)).map((d) => `${d.kind}:${d.status}`)
      expect(kinds).toEqual(['welcome:sent', 'welcome-back:sent'])
    })
  })

  it('an unfollow from an unknown user keeps only its event; an older follow arriving after it is stale', async () => {
    const user = k.line.users.create()
    const t = Date.now()
    const follow = k.line.buildEvent('follow', user.userId, {}, { timestamp: t - 5_000 })
    const unfollow = k.line.buildEvent('unfollow', user.userId, {}, { timestamp: t })
    const customersBefore = await countCustomers()
    expect((await k.line.deliverWebhook([unfollow])).status).toBe(200)
    await eventually(async () => expect(await outcomeOf(unfollow.webhookEventId)).toBe('stored'))
    expect((await k.line.deliverWebhook([follow])).status).toBe(200)
    await eventually(async () => expect(await outcomeOf(follow.webhookEventId)).toBe('stale'))
    expect(await lineUser(user.userId)).toBeUndefined()
    expect(await countCustomers()).toBe(customersBefore)
    expect(k.line.inbox(user.userId)).toHaveLength(0)

    // A message that happened before the unfollow, arriving after it: someone to answer, blocked.
    const text = k.line.buildEvent('text', user.userId, { text: 'help' }, { timestamp: t - 1_000 })
    expect((await k.line.deliverWebhook([text])).status).toBe(200)
    await eventually(async () => expect(await outcomeOf(text.webhookEventId)).not.toBeNull())
    const row = await lineUser(user.userId)
    expect(row?.status).toBe('blocked')
    expect(row?.status_changed_at.getTime()).toBe(t)
  })

  it('an erased person who blocks and adds the account again is welcomed as new, not back', async () => {
    const user = k.line.users.create()
    await k.line.users.follow(user.userId)
    await eventually(async () => expect((await deliveriesOf(user.userId))[0]?.status).toBe('sent'))
    const erased = (await lineUser(user.userId))!
    await eraseCustomer(k.deps.db, erased.customer_id)

    const customersBefore = await countCustomers()
    const block = (await k.line.users.block(user.userId))!
    const blockId = block.body.events[0]!.webhookEventId
    await eventually(async () => expect(await outcomeOf(blockId)).toBe('stored'))
    expect(await lineUser(user.userId)).toBeUndefined()
    expect(await countCustomers()).toBe(customersBefore)

    await k.line.users.follow(user.userId)
    await eventually(async () => {
      const kinds = (await deliveriesOf(user.userId)).map((d) => `${d.kind}:${d.status}`)
      expect(kinds).toEqual(['welcome:sent'])
    })
    expect((await lineUser(user.userId))?.customer_id).not.toBe(erased.customer_id)
  })

  it('someone first met through a message who blocks and unblocks is welcomed, not welcomed back', async () => {
    const user = friendOnLine()
    await k.line.users.sendText(user.userId, 'help')
    await eventually(async () => expect((await lineUser(user.userId))?.status).toBe('friend'))
    await k.line.users.block(user.userId)
    await eventually(async () => expect((await lineUser(user.userId))?.status).toBe('blocked'))
    await k.line.users.follow(user.userId)
    await eventually(async () => {
      const kinds = (await deliveriesOf(user.userId)).map((d) => `${d.kind}:${d.status}`)
      expect(kinds).toContain('welcome:sent')
    })
    const kinds = (await deliveriesOf(user.userId)).map((d) => d.kind)
    expect(kinds).not.toContain('welcome-back')
  })

  it('a follow and an unfollow with the same timestamp leave the user blocked in either order', async () => {
    const t = Date.now() - 1_000
    for (const order of ['follow first', 'unfollow first']) {
      const user = friendOnLine()
      const follow = k.line.buildEvent('follow', user.userId, {}, { timestamp: t })
      const unfollow = k.line.buildEvent('unfollow', user.userId, {}, { timestamp: t })
      const events = order === 'follow first' ? [follow, unfollow] : [unfollow, follow]
      for (const event of events) {
        expect((await k.line.deliverWebhook([event])).status).toBe(200)
        await eventuallyProcessed(k.deps.db, event.webhookEventId)
      }
      const row = await lineUser(user.userId)
      if (order === 'follow first') {
        expect(row?.status).toBe('blocked')
        expect(row?.status_changed_at.getTime()).toBe(t)
      } else {
        // The unfollow of someone unknown keeps only its event; the follow tied with it is stale.
        expect(row).toBeUndefined()
        expect(k.line.inbox(user.userId)).toEqual([])
      }
    }
  })

  it('one request with many events from many users: each takes effect once', async () => {
    const users = Array.from({ length: 5 }, friendOnLine)
    const events = users.flatMap((u) => [
      k.line.buildEvent('follow', u.userId, {}),
      k.line.buildEvent('text', u.userId, { text: 'help' }),
    ])
    expect((await k.line.deliverWebhook(events)).status).toBe(200)
    expect((await k.line.deliverWebhook(events, { redelivery: true })).status).toBe(200)
    await eventually(async () => {
      for (const u of users) {
        const kinds = (await deliveriesOf(u.userId)).map((d) => `${d.kind}:${d.status}`).sort()
        expect(kinds).toEqual(['help:sent', 'welcome:sent'])
      }
    })
    for (const u of users) expect(k.line.inbox(u.userId)).toHaveLength(2)
    expectNoRejectedRequests(k.line)
  })
})
