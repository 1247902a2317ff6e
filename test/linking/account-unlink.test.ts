import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConsent, setConsent } from '../../src/consent/consent.service.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually, eventuallyProcessed } from '../support/wait.ts'
import {
  linkedUpTo,
  linkReads,
  newEmail,
  onlineCustomer,
  proveEmail,
  type Smtp,
  startSmtp,
  tapLinkToken,
} from './support.ts'

// Unlinking a linked LINE account (and linking it again). The link: account-link.test.ts.

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

const { lineUser, identitiesOf, purchasesOf, auditActionsOf, texts, waitForText } = linkReads(
  () => k,
)

/** A friend whose LINE account is linked to the online account of `email`. */
async function linkedFriend(email: string) {
  const { user, dialog } = await linkedUpTo(k, smtp, email)
  await k.line.users.accountLink(user.userId, dialog)
  await waitForText(user.userId, 'now linked')
  return user
}

/** Links the (unlinked) LINE account to the online account of `email` again. */
async function linkAgain(userId: string, email: string) {
  const dialog = await proveEmail(k, smtp, await tapLinkToken(k, userId), email)
  const linkedTexts = () => texts(userId).filter((t) => t.includes('now linked'))
  const before = linkedTexts().length
  await k.line.users.accountLink(userId, dialog)
  await eventually(() => expect(linkedTexts()).toHaveLength(before + 1))
}

describe('LINE account unlink', () => {
  it('unlinks: the LINE account leaves, purchases stay with the online account', async () => {
    const email = newEmail()
    await onlineCustomer(k, { email })
    const user = await linkedFriend(email)
    const linked = (await lineUser(user.userId)).customer_id
    const optOut = { category: 'marketing', channel: 'line', granted: false } as const
    await setConsent(k.deps.db, linked, { ...optOut, source: 'admin' })

    await k.line.users.postback(user.userId, 'action=unlink')
    await waitForText(user.userId, 'has been unlinked')
    const lu = await lineUser(user.userId)
    expect(lu.customer_id).not.toBe(linked)
    // The split-off LINE customer keeps the opt-out: never more consent than the person gave.
    expect((await loadConsent(k.deps.db, lu.customer_id)).marketing.line).toBe(false)
    // A card of its own, without a second welcome coupon; the first card stays.
    expect(await identitiesOf(lu.customer_id)).toEqual(['line', 'member_card'])
    expect(await identitiesOf(linked)).toEqual(['email', 'member_card'])
    expect(await purchasesOf(linked)).toBe(1)
    const audit = await k.deps.db
      .selectFrom('link_audit')
      .select('action')
      .where('line_user_id', '=', lu.id)
      .orderBy('created_at')
      .execute()
    expect(audit.map((a) => a.action)).toEqual(['link', 'unlink'])

    await k.line.users.postback(user.userId, 'action=unlink')
    await waitForText(user.userId, 'No online account is linked')
  })

  it("unlinks into a customer named as the LINE profile, never with the online account's name", async () => {
    const email = newEmail()
    await onlineCustomer(k, { email })
    const { user, dialog } = await linkedUpTo(k, smtp, email)
    const lineName = user.displayName
    await eventually(async () => expect((await lineUser(user.userId)).display_name).toBe(lineName))
    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'now linked')
    // The shop's data names the linked customer (a customer import overwrites the name).
    const linked = (await lineUser(user.userId)).customer_id
    const shopName = `Shop name ${randomUUID().slice(0, 8)}`
    await k.deps.db
      .updateTable('customer')
      .set({ display_name: shopName })
      .where('id', '=', linked)
      .execute()

    await k.line.users.postback(user.userId, 'action=unlink')
    await waitForText(user.userId, 'has been unlinked')
    const split = (await lineUser(user.userId)).customer_id
    const names = await k.deps.db
      .selectFrom('customer')
      .select(['id', 'display_name'])
      .where('id', 'in', [linked, split])
      .execute()
    expect(Object.fromEntries(names.map((c) => [c.id, c.display_name]))).toEqual({
      [linked]: shopName,
      [split]: lineName,
    })
  })

  it('lets a linked shopper unlink from Help on any menu, vip included (it has no Unlink button)', async () => {
    const vip = JSON.stringify(
      JSON.parse(readFileSync(new URL('../../richmenus/vip/menu.json', import.meta.url), 'utf8')),
    )
    expect(vip).toContain('action=help')
    expect(vip).not.toContain('action=unlink')
    const user = await linkedFriend(newEmail())
    expect(texts(user.userId).join()).toContain('Help')

    await k.line.users.postback(user.userId, 'action=help')
    const help = await eventually(() => {
      const found = k.line.inbox(user.userId).findLast((e) => e.message.type === 'text')
      expect(JSON.stringify(found?.message)).toContain('Member card: send')
      return found?.message as {
        text: string
        quickReply?: { items: { action: { data?: string } }[] }
      }
    })
    const unlink = help.quickReply?.items.find((i) => i.action.data === 'action=unlink')
    expect(unlink).toBeDefined()
    expect(help.text).toContain('Unlink')

    await k.line.users.postback(user.userId, unlink?.action.data ?? '')
    await waitForText(user.userId, 'has been unlinked')
  })

  it('gives one welcome coupon however often a LINE account is unlinked and linked again', async () => {
    const email = newEmail()
    const user = await linkedFriend(email)
    const linked = (await lineUser(user.userId)).customer_id

    await k.line.users.postback(user.userId, 'action=unlink')
    await waitForText(user.userId, 'has been unlinked')
    const cards = k.line.inbox(user.userId).filter((e) => e.message.type === 'flex').length
    await k.line.users.postback(user.userId, 'action=card')
    await eventually(() =>
      expect(k.line.inbox(user.userId).filter((e) => e.message.type === 'flex')).toHaveLength(
        cards + 1,
      ),
    )
    await linkAgain(user.userId, email)

    // The person holds every coupon they ever had again, on one customer: one welcome coupon.
    const now = (await lineUser(user.userId)).customer_id
    const welcome = await k.deps.db
      .selectFrom('coupon')
      .select('customer_id')
      .where('customer_id', 'in', [now, linked])
      .where('kind', '=', 'welcome')
      .execute()
    expect(welcome.map((c) => c.customer_id)).toEqual([now])
  })

  it('leaves a newer link alone when an unlink tapped before it is processed late', async () => {
    const email = newEmail()
    const user = await linkedFriend(email)
    // The shopper taps Unlink; that event's job fails for a while (it is delivered last here).
    const late = k.line.buildEvent(
      'postback',
      user.userId,
      { data: 'action=unlink' },
      { timestamp: Date.now() },
    )
    // Taps it again, which is processed, and links again.
    await k.line.users.postback(user.userId, 'action=unlink')
    await waitForText(user.userId, 'has been unlinked')
    await linkAgain(user.userId, email)
    const relinked = await lineUser(user.userId)
    const unlinkedTexts = texts(user.userId).filter((t) => t.includes('has been unlinked')).length

    expect((await k.line.deliverWebhook([late])).status).toBe(200)
    await eventuallyProcessed(k.deps.db, late.webhookEventId)
    const event = await k.deps.db
      .selectFrom('webhook_event')
      .select('outcome')
      .where('webhook_event_id', '=', late.webhookEventId)
      .executeTakeFirstOrThrow()
    expect(event.outcome).toBe('stale')
    // The link made after the tap stands: same customer, still active, no unlink recorded.
    expect((await lineUser(user.userId)).customer_id).toBe(relinked.customer_id)
    const active = await k.deps.db
      .selectFrom('account_link')
      .select('customer_id')
      .where('line_user_id', '=', relinked.id)
      .where('unlinked_at', 'is', null)
      .execute()
    expect(active).toEqual([{ customer_id: relinked.customer_id }])
    expect(await auditActionsOf(relinked.id)).toEqual(['link', 'unlink', 'link'])
    // Nothing answered: no reply written for the event, none shown.
    const reply = await k.deps.db
      .selectFrom('delivery')
      .select('id')
      .where('dedupe_key', '=', `reply:${late.webhookEventId}`)
      .execute()
    expect(reply).toEqual([])
    expect(texts(user.userId).filter((t) => t.includes('has been unlinked'))).toHaveLength(
      unlinkedTexts,
    )
  })
})
