import { randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { findCustomerByIdentity } from '../../src/customers/customer-lookup.service.ts'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { recordOrder } from '../../src/orders/order.service.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import { memberCardsOf } from '../customers/factories.ts'
import { makeStoreKey } from '../purchases/fixtures.ts'
import { cli } from '../support/cli.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import {
  expectShopperError,
  friend,
  linkedUpTo,
  linkReads,
  newEmail,
  onlineCustomer,
  onlineOrder,
  proveEmail,
  type Smtp,
  shopAccountByOrder,
  startSmtp,
  tapLink,
  tapLinkToken,
} from './support.ts'

let k: TestKizuna
let smtp: Smtp

beforeAll(async () => {
  smtp = await startSmtp()
  k = await startTestKizuna({ SMTP_URL: smtp.url, PUBLIC_BASE_URL: 'https://shop.example' })
})
afterAll(async () => {
  await k?.stopAll()
  await smtp?.close()
})

const { lineUser, identitiesOf, purchasesOf, texts, waitForText } = linkReads(() => k)

/** Once Kizuna handled this failed accountLink event: its nonce failed, linking nothing, unanswered. */
async function expectNonceFailedWithoutReply(webhookEventId: string, nonce: string) {
  await eventually(async () => {
    const row = await k.deps.db
      .selectFrom('webhook_event')
      .select('outcome')
      .where('webhook_event_id', '=', webhookEventId)
      .executeTakeFirst()
    expect(row?.outcome).toBe('handled')
  })
  const row = await k.deps.db
    .selectFrom('link_nonce')
    .select(['status', 'identity_value'])
    .where('nonce_hash', '=', sha256(nonce))
    .executeTakeFirstOrThrow()
  expect(row).toEqual({ status: 'failed', identity_value: null })
  // A reply is a delivery row written in the event's transaction (it reaches LINE later, so
  // the inbox alone would be read before it arrived): none for the event.
  const reply = await k.deps.db
    .selectFrom('delivery')
    .select('id')
    .where('dedupe_key', '=', `reply:${webhookEventId}`)
    .execute()
  expect(reply).toEqual([])
}

describe('LINE account link', () => {
  it('links a LINE friend to their online account, purchases included', async () => {
    const email = newEmail()
    const online = await onlineCustomer(k, { email })
    const user = await friend(k)
    const url = await tapLink(k, user.userId)
    expect(k.line.requestsTo('POST', `/v2/bot/user/${user.userId}/linkToken`)).toHaveLength(1)
    expect(`${url.origin}${url.pathname}`).toBe('https://shop.example/link')
    expect(texts(user.userId).join()).toContain('unlink at any time')
    const invite = k.line.inbox(user.userId).find((e) => e.message.type === 'template')
    expect(invite?.endpoint).toBe('reply')

    const linkToken = url.searchParams.get('linkToken') ?? ''
    const page = await fetch(`${k.baseUrl}/link?linkToken=${encodeURIComponent(linkToken)}`)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('name="email"')
    const dialog = await proveEmail(k, smtp, linkToken, email)
    const { nonce } = dialog
    expect(nonce.length).toBeGreaterThanOrEqual(22)
    const stored = await k.deps.db.selectFrom('link_nonce').selectAll().execute()
    expect(stored.some((n) => n.nonce_hash === sha256(nonce))).toBe(true)
    expect(JSON.stringify(stored)).not.toContain(nonce)

    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'now linked')
    const lu = await lineUser(user.userId)
    expect(await identitiesOf(lu.customer_id)).toEqual(['email', 'line', 'member_card'])
    expect(await purchasesOf(lu.customer_id)).toBe(1)
    const customer = await k.deps.db
      .selectFrom('customer')
      .select(['id', 'email', 'merged_into_id'])
      .where('id', 'in', [lu.customer_id, online])
      .execute()
    expect(customer.find((c) => c.id === online)?.merged_into_id).toBe(lu.customer_id)
    expect(customer.find((c) => c.id === lu.customer_id)?.email).toBe(email)
    const audit = await k.deps.db
      .selectFrom('link_audit')
      .select('action')
      .where('line_user_id', '=', lu.id)
      .execute()
    expect(audit.map((a) => a.action)).toEqual(['link'])

    // The link token that linked opens no more link pages: the LINE account is linked.
    const again = await fetch(`${k.baseUrl}/link?linkToken=${encodeURIComponent(linkToken)}`)
    const refused = await expectShopperError(again, 409, {
      en: 'your LINE account is already linked to an online account',
      ja: 'すでにオンラインアカウントと連携済み',
    })
    expect(refused).not.toContain('name="email"')
    // An event with the same nonce again (a replayed link): refused, nothing changes.
    await k.line.deliverWebhook([
      k.line.buildEvent('accountLink', user.userId, { nonce, result: 'ok' }),
    ])
    await waitForText(user.userId, 'expired or was already used')

    // Tapping "link" again says it is linked and asks LINE for nothing.
    await k.line.users.postback(user.userId, 'action=link')
    await waitForText(user.userId, 'already linked')
    expect(k.line.requestsTo('POST', `/v2/bot/user/${user.userId}/linkToken`)).toHaveLength(1)
  })

  it('attaches online orders that waited for an email nobody had yet', async () => {
    const email = newEmail()
    await k.deps.db
      .transaction()
      .execute((trx) => recordOrder(trx, k.deps.env, onlineOrder({ email }, 8_000)))
    const { user, dialog } = await linkedUpTo(k, smtp, email)
    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'now linked')
    const lu = await lineUser(user.userId)
    expect(await identitiesOf(lu.customer_id)).toContain('email')
    expect(await purchasesOf(lu.customer_id)).toBe(1)
  })

  it('tells the shopper when the nonce has expired', async () => {
    const { user, dialog, nonce } = await linkedUpTo(k, smtp, newEmail())
    await k.deps.db
      .updateTable('link_nonce')
      .set({ expires_at: new Date(Date.now() - 60_000) })
      .where('nonce_hash', '=', sha256(nonce))
      .execute()
    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'expired or was already used')
    expect(await identitiesOf((await lineUser(user.userId)).customer_id)).not.toContain('email')
  })

  it('links when LINE confirmed the link in time, however late the event is processed', async () => {
    const email = newEmail()
    const { user, nonce } = await linkedUpTo(k, smtp, email)
    // The shopper confirmed in LINE two minutes ago, while the nonce was valid; the event waited
    // in the inbox (a worker or Redis outage) until after the nonce's expiry.
    await k.deps.db
      .updateTable('link_nonce')
      .set({ expires_at: new Date(Date.now() - 60_000) })
      .where('nonce_hash', '=', sha256(nonce))
      .execute()
    const event = k.line.buildEvent(
      'accountLink',
      user.userId,
      { nonce, result: 'ok' },
      { timestamp: Date.now() - 120_000 },
    )
    expect((await k.line.deliverWebhook([event])).status).toBe(200)
    await eventually(() =>
      expect(texts(user.userId).some((t) => /now linked|expired or was already used/.test(t))).toBe(
        true,
      ),
    )
    expect(await identitiesOf((await lineUser(user.userId)).customer_id)).toContain('email')
  })

  it('ends the nonce on a failed link, without a reply', async () => {
    const { user, dialog, nonce } = await linkedUpTo(k, smtp, newEmail())
    const { customer_id: customerId } = await lineUser(user.userId)
    /** The deliveries scheduled for the friend's customer (replies included), by dedupe key. */
    const deliveries = async () =>
      (
        await k.deps.db
          .selectFrom('delivery')
          .select('dedupe_key')
          .where('customer_id', '=', customerId)
          .orderBy('dedupe_key')
          .execute()
      ).map((d) => d.dedupe_key)
    const deliveriesBefore = await deliveries()
    const inboxBefore = k.line.inbox(user.userId).length
    const sent = await k.line.users.accountLink(user.userId, dialog, 'failed')
    await expectNonceFailedWithoutReply(sent.body.events[0]?.webhookEventId ?? '', nonce)
    // None for the friend either.
    expect(await deliveries()).toEqual(deliveriesBefore)
    expect(k.line.inbox(user.userId)).toHaveLength(inboxBefore)
    // A new link token and the failed nonce: refused.
    const linkToken = await tapLinkToken(k, user.userId)
    await k.line.users.accountLink(user.userId, { linkToken, nonce })
    await waitForText(user.userId, 'expired or was already used')
  })

  it('ends the nonce, with no reply and no link, when another LINE user opens the dialog', async () => {
    // The link URL reached someone else, whose LINE opens the dialog: LINE sends a failed
    // accountLink, without source or reply token, and the link token is spent (LINE-API.md §6).
    const email = newEmail()
    const { user, dialog, nonce } = await linkedUpTo(k, smtp, email)
    const other = await friend(k)
    const inboxes = () => [user, other].map((u) => k.line.inbox(u.userId).length)
    const inboxesBefore = inboxes()
    const sent = await k.line.users.accountLink(other.userId, dialog)
    const [event] = sent.body.events
    expect(event).toMatchObject({ type: 'accountLink', link: { result: 'failed', nonce } })
    expect(event).not.toHaveProperty('source')
    await expectNonceFailedWithoutReply(event!.webhookEventId, nonce)
    expect(inboxes()).toEqual(inboxesBefore)
    for (const u of [user, other]) {
      expect(await identitiesOf((await lineUser(u.userId)).customer_id)).not.toContain('email')
    }
    // The shopper's own LINE cannot use the spent token: LINE shows an error, sends nothing.
    await expect(k.line.users.accountLink(user.userId, dialog)).rejects.toThrow(/used/)
  })

  it('refuses a nonce issued for another LINE account, and it still works for its own', async () => {
    const email = newEmail()
    const { user, dialog, nonce } = await linkedUpTo(k, smtp, email)
    const other = await friend(k)
    // Their own link token is not the one Kizuna sent the shopper with; LINE takes any nonce.
    const otherToken = await tapLinkToken(k, other.userId)
    await k.line.users.accountLink(other.userId, { linkToken: otherToken, nonce })
    await waitForText(other.userId, 'expired or was already used')
    expect(await identitiesOf((await lineUser(other.userId)).customer_id)).not.toContain('email')

    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'now linked')
    expect(await identitiesOf((await lineUser(user.userId)).customer_id)).toContain('email')
  })

  it('refuses an online account that another LINE friend already linked', async () => {
    const email = newEmail()
    const first = await linkedUpTo(k, smtp, email)
    await k.line.users.accountLink(first.user.userId, first.dialog)
    await waitForText(first.user.userId, 'now linked')

    const second = await linkedUpTo(k, smtp, email)
    await k.line.users.accountLink(second.user.userId, second.dialog)
    await waitForText(second.user.userId, 'already linked to another LINE account')
    const lu = await lineUser(second.user.userId)
    expect(await identitiesOf(lu.customer_id)).toEqual(['line', 'member_card'])
    expect((await lineUser(first.user.userId)).customer_id).not.toBe(lu.customer_id)
  })

  it('refuses an online account whose customer has another shop account than the LINE friend has', async () => {
    const user = await friend(k)
    const friendId = (await lineUser(user.userId)).customer_id
    const [a, b] = [`A-${randomUUID().slice(0, 8)}`, `B-${randomUUID().slice(0, 8)}`]
    await shopAccountByOrder(k, friendId, a)
    // The online account the friend proves by email holds shop account B.
    const email = newEmail()
    const online = await onlineCustomer(k, { email })
    await shopAccountByOrder(k, online, b)

    const dialog = await proveEmail(k, smtp, await tapLinkToken(k, user.userId), email)
    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'another online shop account')
    const lu = await lineUser(user.userId)
    expect(lu.customer_id).toBe(friendId)
    const shops = await k.deps.db
      .selectFrom('identity')
      .select(['customer_id', 'value'])
      .where('kind', '=', 'online_customer')
      .where('value', 'in', [a, b])
      .orderBy('value')
      .execute()
    expect(shops).toEqual([
      { customer_id: friendId, value: a },
      { customer_id: online, value: b },
    ])
    expect(await findCustomerByIdentity(k.deps.db, 'email', email)).toBe(online)
    const audit = await k.deps.db
      .selectFrom('link_audit')
      .select(['action', 'detail'])
      .where('line_user_id', '=', lu.id)
      .execute()
    expect(audit).toEqual([
      {
        action: 'link-conflict',
        detail: { kind: 'email', code: 'CONFLICT', reason: 'other-shop-account' },
      },
    ])
  })

  it("keeps an imported member's card through their follow and link: it scans to them, LINE shows it", async () => {
    const email = newEmail()
    const file = join(tmpdir(), `kizuna-link-${randomUUID()}.csv`)
    await writeFile(file, `email,name\n${email},Hana\n`)
    expect((await cli(['import', 'customers', file])).stdout).toContain('member cards issued 1')
    const imported = await findCustomerByIdentity(k.deps.db, 'email', email)
    const [card] = await memberCardsOf(k.deps.db, imported ?? '')

    // The follow cannot know who the new friend is: they get a card and the welcome coupon of
    // their own, and the link then brings the imported customer (and its card) to them.
    const { user, dialog } = await linkedUpTo(k, smtp, email)
    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'now linked')
    const linked = (await lineUser(user.userId)).customer_id
    const cards = await memberCardsOf(k.deps.db, linked)
    expect(cards[0]).toBe(card)
    expect(cards).toHaveLength(2)
    const coupons = await k.deps.db
      .selectFrom('coupon')
      .select('kind')
      .where('customer_id', '=', linked)
      .execute()
    expect(coupons).toEqual([{ kind: 'welcome' }])

    const { key } = await makeStoreKey(k.deps.db)
    for (const barcode of cards) {
      const res = await fetch(`${k.baseUrl}/api/pos/scans`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ barcode }),
      })
      expect(res.status).toBe(200)
      expect(((await res.json()) as ScanResponse).customer.id).toBe(linked)
    }
    // The card LINE shows from now on is the imported one (the oldest).
    await k.line.users.sendText(user.userId, 'card')
    await waitForText(user.userId, card ?? 'no card')
  })
})
