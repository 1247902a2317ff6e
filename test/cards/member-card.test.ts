import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { isValidEan13 } from '../../src/cards/ean13.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { eventually } from '../support/wait.ts'

const PUBLIC_BASE_URL = 'https://kizuna.example.test'
let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna({ PUBLIC_BASE_URL })
})
afterAll(async () => {
  await k.stopAll()
})
beforeEach(() => {
  k.line.clearRequests()
})

async function customerOf(lineUid: string) {
  const row = await k.deps.db
    .selectFrom('line_user')
    .select('customer_id')
    .where('line_uid', '=', lineUid)
    .executeTakeFirst()
  return row?.customer_id
}

const cardsOf = (customerId: string) =>
  k.deps.db
    .selectFrom('identity')
    .selectAll()
    .where('customer_id', '=', customerId)
    .where('kind', '=', 'member_card')
    .execute()

const couponsOf = (customerId: string) =>
  k.deps.db.selectFrom('coupon').selectAll().where('customer_id', '=', customerId).execute()

type Flex = { type: 'flex'; altText: string; contents: { hero?: { url: string } } }
const flexIn = (userId: string): Flex[] =>
  k.line
    .inbox(userId)
    .map((m) => m.message as unknown as Flex)
    .filter((m) => m.type === 'flex')

/** A new friend, once their member card has arrived. */
async function newFriend() {
  const user = k.line.users.create()
  await k.line.users.follow(user.userId)
  await eventually(() => expect(flexIn(user.userId)).toHaveLength(1))
  const customerId = (await customerOf(user.userId))!
  const [card] = await cardsOf(customerId)
  return { user, customerId, cardNumber: card!.value }
}

describe('member card on follow', () => {
  it('issues exactly one card and one welcome coupon and replies the card as Flex', async () => {
    const { user, customerId, cardNumber } = await newFriend()

    const cards = await cardsOf(customerId)
    expect(cards).toHaveLength(1)
    expect(cardNumber).toMatch(/^29\d{11}$/)
    expect(isValidEan13(cardNumber)).toBe(true)

    const coupons = await couponsOf(customerId)
    expect(coupons).toHaveLength(1)
    const [coupon] = coupons
    expect(coupon?.kind).toBe('welcome')
    expect(coupon?.code).toMatch(/^[A-Z2-7]{10}$/)
    expect(coupon?.discount_yen).toBe(500)
    const days = (coupon!.expires_at!.getTime() - coupon!.created_at.getTime()) / 86_400_000
    expect(days).toBeCloseTo(30, 0)

    const [entry] = k.line.inbox(user.userId)
    expect(entry?.endpoint).toBe('reply')
    const [flex] = flexIn(user.userId)
    const json = JSON.stringify(flex?.contents)
    expect(json).toContain(cardNumber)
    expect(json).toContain(coupon!.code)
    // Rendered when sent: the LINE profile's name if it was fetched by then, else "Member".
    expect([`"${user.displayName}"`, '"Member"'].some((name) => json.includes(name))).toBe(true)
    expect(flex?.contents.hero?.url).toMatch(
      new RegExp(`^${PUBLIC_BASE_URL}/cards/[\\w-]+\\.[\\w-]+/barcode\\.png$`),
    )
    // The token names no card number, customer or LINE user.
    const token = flex!.contents.hero!.url.split('/')[4]!
    const payload = Buffer.from(token.split('.')[0]!, 'base64url').toString()
    expect(payload).not.toContain(cardNumber)
    expect(payload).not.toContain(customerId)
    expect(payload).not.toContain(user.userId)
    expectNoRejectedRequests(k.line)
  })

  it('keeps the card on unblock and welcomes back with it', async () => {
    const { user, customerId, cardNumber } = await newFriend()
    await k.line.users.block(user.userId)
    await eventually(async () => {
      const row = await k.deps.db
        .selectFrom('line_user')
        .select('status')
        .where('line_uid', '=', user.userId)
        .executeTakeFirst()
      expect(row?.status).toBe('blocked')
    })
    await k.line.users.follow(user.userId)
    await eventually(() => expect(flexIn(user.userId)).toHaveLength(2))

    expect(await cardsOf(customerId)).toHaveLength(1)
    expect(await couponsOf(customerId)).toHaveLength(1)
    const inbox = k.line.inbox(user.userId)
    expect(inbox.map((m) => m.message.type)).toEqual(['flex', 'flex'])
    expect(inbox[1]?.message.altText).toMatch(/^おかえりなさい/)
    expect(JSON.stringify(inbox[1]?.message)).toContain(cardNumber)
  })
})

describe('asking for the card', () => {
  it('replies the same card to 会員証, "Card" and a postback action=card', async () => {
    const { user, customerId, cardNumber } = await newFriend()
    await k.line.users.sendText(user.userId, '会員証')
    await eventually(() => expect(flexIn(user.userId)).toHaveLength(2))
    await k.line.users.sendText(user.userId, ' Card ')
    await eventually(() => expect(flexIn(user.userId)).toHaveLength(3))
    await k.line.users.postback(user.userId, 'action=card&from=richmenu')
    await eventually(() => expect(flexIn(user.userId)).toHaveLength(4))

    const replies = k.line.inbox(user.userId).slice(1)
    expect(replies.map((m) => m.endpoint)).toEqual(['reply', 'reply', 'reply'])
    for (const reply of replies) expect(JSON.stringify(reply.message)).toContain(cardNumber)
    expect(await cardsOf(customerId)).toHaveLength(1)
    expect(await couponsOf(customerId)).toHaveLength(1)
    const kinds = await k.deps.db
      .selectFrom('delivery')
      .select('kind')
      .where('customer_id', '=', customerId)
      .orderBy('created_at')
      .execute()
    expect(kinds.map((d) => d.kind)).toEqual([
      'welcome',
      'member-card',
      'member-card',
      'member-card',
    ])
    expectNoRejectedRequests(k.line)
  })

  it('shows the name from the LINE profile once it is known', async () => {
    const user = k.line.users.create({ displayName: '佐藤 "さくら"' })
    await k.line.users.follow(user.userId)
    await eventually(async () => {
      const customerId = await customerOf(user.userId)
      const row = await k.deps.db
        .selectFrom('customer')
        .select('display_name')
        .where('id', '=', customerId!)
        .executeTakeFirst()
      expect(row?.display_name).toBe('佐藤 "さくら"')
    })
    await k.line.users.sendText(user.userId, '会員証')
    await eventually(() => expect(flexIn(user.userId)).toHaveLength(2))
    const card = flexIn(user.userId)[1]!
    expect(card.altText).toContain('佐藤 "さくら"')
    expect(JSON.stringify(card.contents)).toContain(JSON.stringify('佐藤 "さくら"'))
    expectNoRejectedRequests(k.line)
  })

  it('cuts a name longer than the card takes (an import takes 200 characters) instead of sending nothing', async () => {
    const { user, customerId } = await newFriend()
    const long = `${'長'.repeat(150)}`
    await k.deps.db
      .updateTable('customer')
      .set({ display_name: long })
      .where('id', '=', customerId)
      .execute()
    await k.line.users.sendText(user.userId, '会員証')
    await eventually(() => expect(flexIn(user.userId)).toHaveLength(2))
    const card = flexIn(user.userId)[1]!
    expect(JSON.stringify(card.contents)).toContain(JSON.stringify(`${'長'.repeat(99)}…`))
    expectNoRejectedRequests(k.line)
  })
})
