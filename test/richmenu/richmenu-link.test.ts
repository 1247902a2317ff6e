import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { attachIdentity } from '../../src/customers/merge.service.ts'
import type { Segment } from '../../src/richmenu/richmenu.schemas.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import { createCustomer } from '../customers/factories.ts'
import {
  friend,
  onlineCustomer,
  onlineOrder,
  proveEmail,
  type Smtp,
  startSmtp,
  tapLinkToken,
} from '../linking/support.ts'
import { legacyCardNumber, makeCustomer, makeStoreKey, receipt } from '../purchases/fixtures.ts'
import { startTestKizuna, TEST_CHANNEL_TOKEN, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { racingMerge } from '../support/locks.ts'
import { eventually, eventuallyProcessed } from '../support/wait.ts'
import { createLiveMenu, type LiveMenu, retireMenus } from './richmenu-link-fixtures.ts'

let k: TestKizuna
let smtp: Smtp
let storeKey: string
const menus = {} as Record<Segment, LiveMenu>

beforeAll(async () => {
  smtp = await startSmtp()
  k = await startTestKizuna({
    SMTP_URL: smtp.url,
    PUBLIC_BASE_URL: 'https://shop.example',
    TIER_THRESHOLDS: 'silver:5000,gold:50000',
  })
  for (const segment of ['new_friend', 'member', 'linked', 'vip'] as const) {
    menus[segment] = await createLiveMenu(k.deps, [segment])
  }
  ;({ key: storeKey } = await makeStoreKey(k.deps.db))
})
afterAll(async () => {
  // The test database is shared: no live menu of this file is left for the next one.
  await retireMenus(
    k.deps,
    Object.values(menus).map((m) => m.versionId),
  )
  await k?.stopAll()
  await smtp?.close()
})
beforeEach(() => {
  k.line.clearFailures()
})

/** The menu LINE shows this user, asked over HTTP as Kizuna would (404: none linked). */
async function menuOnLine(lineUid: string): Promise<string | null> {
  const res = await fetch(`${k.line.apiBaseUrl}/v2/bot/user/${lineUid}/richmenu`, {
    headers: { authorization: `Bearer ${TEST_CHANNEL_TOKEN}` },
  })
  if (res.status === 404) return null
  expect(res.status).toBe(200)
  return ((await res.json()) as { richMenuId: string }).richMenuId
}

const lineUserRow = (lineUid: string) =>
  k.deps.db
    .selectFrom('line_user')
    .selectAll()
    .where('line_uid', '=', lineUid)
    .executeTakeFirstOrThrow()

/** LINE shows `segment`'s menu and the row records its version. */
async function expectMenu(lineUid: string, segment: Segment) {
  await eventually(async () => {
    expect(await menuOnLine(lineUid)).toBe(menus[segment].richMenuId)
    const row = await lineUserRow(lineUid)
    expect(row.richmenu_version_id).toBe(menus[segment].versionId)
    expect(row.richmenu_linked_at).not.toBeNull()
  })
}

async function memberCardOf(lineUid: string): Promise<string> {
  const row = await lineUserRow(lineUid)
  const card = await k.deps.db
    .selectFrom('identity')
    .select('value')
    .where('customer_id', '=', row.customer_id)
    .where('kind', '=', 'member_card')
    .executeTakeFirstOrThrow()
  return card.value
}

async function scan(barcode: string, total: number) {
  const body = { barcode, receipt: receipt({ total }) }
  const res = await fetch(`${k.baseUrl}/api/pos/scans`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${storeKey}` },
    body: JSON.stringify(body),
  })
  expect(res.status).toBe(200)
  return body.receipt.id
}

/** The richmenu.link-users jobs of the queue, done or not (a day's are kept). */
const linkUsersJobs = async () =>
  (
    await k.deps.queues.byName.richmenu.getJobs([
      'completed',
      'active',
      'waiting',
      'delayed',
      'prioritized',
      'failed',
    ])
  ).filter((j) => j.name === 'richmenu.link-users')

const linkCallsFor = (lineUid: string) =>
  k.line
    .requestsTo('POST', new RegExp(`^/v2/bot/user/${lineUid}/richmenu/`))
    .concat(
      k.line
        .requestsTo('POST', '/v2/bot/richmenu/bulk/link')
        .filter((r) => (r.body as { userIds: string[] }).userIds.includes(lineUid)),
    )

/**
 * An online order (POST /api/orders) by the email the friend's customer holds (attached first),
 * with `externalId`, the shop's customer id, if given. Returns the friend's line_user row.
 */
async function orderByFriend(lineUid: string, shop: { externalId?: string }) {
  const email = `buyer-${randomUUID().slice(0, 8)}@example.jp`
  const row = await lineUserRow(lineUid)
  await k.deps.db
    .transaction()
    .execute((trx) => attachIdentity(trx, row.customer_id, 'email', email, { env: k.deps.env }))
  const { key } = await createApiKey(k.deps.db, { storeId: null, scopes: ['import'] })
  const res = await fetch(`${k.baseUrl}/api/orders`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(onlineOrder({ email, ...shop }, 1_000)),
  })
  expect(res.status).toBe(201)
  return row
}

/** A new friend links the online account of `email` (emailed code), then unlinks it. */
async function linkThenUnlink(email: string) {
  const user = await friend(k)
  await expectMenu(user.userId, 'new_friend')
  const linkToken = await tapLinkToken(k, user.userId)
  const dialog = await proveEmail(k, smtp, linkToken, email)
  await k.line.users.accountLink(user.userId, dialog)
  await expectMenu(user.userId, 'linked')

  await k.line.users.postback(user.userId, 'action=unlink')
  await expectMenu(user.userId, 'new_friend')
  expectNoRejectedRequests(k.line)
}

describe('rich menu per segment', () => {
  it('a new friend gets the new_friend menu; purchases move them to member, then vip; a void back', async () => {
    const user = await friend(k)
    await expectMenu(user.userId, 'new_friend')
    expect(
      k.line.requestsTo(
        'POST',
        `/v2/bot/user/${user.userId}/richmenu/${menus.new_friend.richMenuId}`,
      ),
    ).toHaveLength(1)

    const card = await memberCardOf(user.userId)
    await scan(card, 1_000)
    await expectMenu(user.userId, 'member')

    // A second purchase that changes nothing: no call to LINE.
    const before = linkCallsFor(user.userId).length
    await scan(card, 1_000)
    const vipReceipt = await scan(card, 60_000)
    await expectMenu(user.userId, 'vip')
    expect(linkCallsFor(user.userId).length).toBe(before + 1)

    const voided = await fetch(
      `${k.baseUrl}/api/pos/receipts/${encodeURIComponent(vipReceipt)}/void`,
      { method: 'POST', headers: { authorization: `Bearer ${storeKey}` } },
    )
    expect(voided.status).toBe(200)
    await expectMenu(user.userId, 'member')
    expectNoRejectedRequests(k.line)
  })

  it('a legacy card linked at the register without a receipt brings its purchases: member', async () => {
    const user = await friend(k)
    await expectMenu(user.userId, 'new_friend')
    const legacy = legacyCardNumber()
    await makeCustomer(k.deps.db, { legacyCard: legacy })
    await scan(legacy, 1_000) // the old plastic card's purchase
    const res = await fetch(`${k.baseUrl}/api/pos/scans`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${storeKey}` },
      body: JSON.stringify({ barcode: await memberCardOf(user.userId), linkBarcode: legacy }),
    })
    expect(res.status).toBe(200)
    await expectMenu(user.userId, 'member')
  })

  it('an online order (POST /api/orders) makes a friend a member', async () => {
    const user = await friend(k)
    await expectMenu(user.userId, 'new_friend')
    await orderByFriend(user.userId, {})
    await expectMenu(user.userId, 'member')
  })

  it("an order whose customer is merged into a friend while it waits names the friend, and moves the friend's menu", async () => {
    const user = await friend(k)
    await expectMenu(user.userId, 'new_friend')
    const friendRow = await lineUserRow(user.userId)
    const email = `buyer-${randomUUID().slice(0, 8)}@example.jp`
    const merged = await createCustomer(k.deps.db, {
      identities: [{ kind: 'email', value: email }],
    })
    const { key } = await createApiKey(k.deps.db, { storeId: null, scopes: ['import'] })
    const order = onlineOrder({ email }, 1_000)
    // The order finds the email's customer, waits for them (an account link holds them), and the
    // link merges them into the friend's customer.
    const res = await racingMerge(
      k.deps.db,
      { survivor: friendRow.customer_id, merged: merged.id },
      () =>
        fetch(`${k.baseUrl}/api/orders`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(order),
        }),
    )
    expect(res.status).toBe(201)
    expect(await res.json()).toMatchObject({ created: true, customerId: friendRow.customer_id })
    const purchases = k.deps.db
      .selectFrom('purchase')
      .select('customer_id')
      .where('external_id', '=', order.orderId)
    expect(await purchases.execute()).toEqual([{ customer_id: friendRow.customer_id }])

    await expectMenu(user.userId, 'member')
    const jobs = await linkUsersJobs()
    expect(jobs.some((j) => j.data.lineUserIds.includes(friendRow.id))).toBe(true)
    expectNoRejectedRequests(k.line)
  })

  it('an account link moves the friend to the linked menu; an unlink back to new_friend', async () => {
    const email = `shopper-${randomUUID().slice(0, 8)}@example.jp`
    // An online-shop customer (email, one order, below vip) whose purchases the link brings.
    await onlineCustomer(k, { email }, 1_000)
    await linkThenUnlink(email)
  })

  it('an account link proven by a new email (no shop customer yet) is linked too; the unlink back', async () => {
    await linkThenUnlink(`new-${randomUUID().slice(0, 8)}@example.jp`)
  })

  it('a shop customer id met in an order is no account link: the member menu, no Unlink in help', async () => {
    const user = await friend(k)
    await expectMenu(user.userId, 'new_friend')
    const row = await orderByFriend(user.userId, { externalId: `shop-${randomUUID()}` })
    const kinds = await k.deps.db
      .selectFrom('identity')
      .select('kind')
      .where('customer_id', '=', row.customer_id)
      .execute()
    expect(kinds.map((i) => i.kind)).toContain('online_customer')
    await expectMenu(user.userId, 'member')

    await k.line.users.sendText(user.userId, 'help')
    const help = await eventually(() => {
      const found = k.line
        .inbox(user.userId)
        .find((e) => JSON.stringify(e.message).includes('Get offers'))
      expect(found).toBeDefined()
      return found?.message as { quickReply: { items: { action: { data: string } }[] } }
    })
    expect(help.quickReply.items.map((i) => i.action.data)).not.toContain('action=unlink')
  })

  it('links nothing while blocked; the unblock (a follow) brings the menu of their segment now', async () => {
    const user = await friend(k)
    await expectMenu(user.userId, 'new_friend')
    const blocked = await lineUserRow(user.userId)
    // The customer's other LINE account (as a merge leaves them), still a friend: the purchase
    // queues its link in the same job as it would the blocked one's, so once that link is done
    // the purchase's queueing is over.
    const other = await friend(k)
    await expectMenu(other.userId, 'new_friend')
    await k.deps.db
      .updateTable('line_user')
      .set({ customer_id: blocked.customer_id })
      .where('line_uid', '=', other.userId)
      .execute()
    await k.line.users.block(user.userId)
    await eventually(async () => expect((await lineUserRow(user.userId)).status).toBe('blocked'))

    const before = linkCallsFor(user.userId).length
    const earlier = new Set((await linkUsersJobs()).map((j) => j.id))
    await scan(await memberCardOf(user.userId), 2_000)
    await expectMenu(other.userId, 'member')
    const linked = (await linkUsersJobs())
      .filter((j) => !earlier.has(j.id))
      .flatMap((j) => (j.data as { lineUserIds: string[] }).lineUserIds)
    expect(linked).toContain((await lineUserRow(other.userId)).id)
    expect(linked).not.toContain(blocked.id)
    expect(linkCallsFor(user.userId)).toHaveLength(before)
    expect((await lineUserRow(user.userId)).richmenu_version_id).toBe(menus.new_friend.versionId)

    await k.line.users.follow(user.userId)
    await expectMenu(user.userId, 'member')
  })
})

describe('rich menu after an unblock', () => {
  /** A friend on the new_friend menu who blocked us. */
  async function blockedFriend() {
    const user = await friend(k)
    await expectMenu(user.userId, 'new_friend')
    await k.line.users.block(user.userId)
    await eventually(async () => expect((await lineUserRow(user.userId)).status).toBe('blocked'))
    // What LINE shows this person is not known while they block us: say nothing is linked.
    delete user.richMenuId
    expect(await menuOnLine(user.userId)).toBeNull()
    return user
  }

  it('links the menu again even when the segment did not change (LINE links nothing to the blocked)', async () => {
    const user = await blockedFriend()

    await k.line.users.follow(user.userId)
    await expectMenu(user.userId, 'new_friend')
  })

  it('forgets the menu on an unblock in standby mode too, so the relink links it (no message sent)', async () => {
    const user = await blockedFriend()
    const before = linkCallsFor(user.userId).length
    const messages = k.line.inbox(user.userId).length

    // Back while a module channel holds the chat: LINE sends the follow in standby mode.
    user.friendship = 'friend'
    const unblock = k.line.buildEvent(
      'follow',
      user.userId,
      { isUnblocked: true },
      { mode: 'standby' },
    )
    expect((await k.line.deliverWebhook([unblock])).status).toBe(200)
    await eventuallyProcessed(k.deps.db, unblock.webhookEventId)
    expect((await lineUserRow(user.userId)).status).toBe('friend')

    await relinkRichMenus(k.deps)
    await expectMenu(user.userId, 'new_friend')
    expect(linkCallsFor(user.userId).length).toBeGreaterThan(before)
    expect(k.line.inbox(user.userId)).toHaveLength(messages)
  })
})
