import { randomInt, randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import sample from '../../flex-templates/campaign-sample.sample.json' with { type: 'json' }
import { setConsent } from '../../src/consent/consent.service.ts'
import { changeCustomerTags } from '../../src/customers/customer-tag.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { attachIdentity } from '../../src/customers/merge.service.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { recordOrder } from '../../src/orders/order.service.ts'
import type { Database } from '../../src/platform/db.ts'
import { insertWebhookBodies } from '../../src/webhook/webhook.repo.ts'
import { friend, proveEmail, tapLinkToken } from '../linking/support.ts'
import { makeStoreKey, receipt } from '../purchases/fixtures.ts'
import { cli } from '../support/cli.ts'
import { findAnywhere as findIn } from '../support/find-anywhere.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { parseMail, type Smtp, startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'

const PUBLIC_BASE_URL = 'https://crm.kizuna.test'
let smtp: Smtp
let k: TestKizuna
let db: Database
beforeAll(async () => {
  smtp = await startSmtp()
  k = await startTestKizuna({ SMTP_URL: smtp.url, PUBLIC_BASE_URL, QUIET_HOURS: '' })
  db = k.deps.db
})
afterAll(async () => {
  await k?.stopAll()
  await smtp?.close()
})

const findAnywhere = (secrets: string[]) => findIn(db, secrets)

const FINAL = ['sent', 'skipped', 'failed', 'cancelled', 'quota_exceeded']
const settled = (ids: string[]) =>
  eventually(async () => {
    const rows = await db.selectFrom('delivery').select('status').where('id', 'in', ids).execute()
    expect(rows.every((r) => FINAL.includes(r.status))).toBe(true)
  })

describe('customers erase leaves nothing of the person in any table', () => {
  it('erases someone who followed, wrote, linked, bought, got LINE and email messages, clicked', async () => {
    const tag = randomUUID().replaceAll('-', '').slice(0, 10)
    const lineName = `Sakamoto${tag}`
    const shopName = `Ryoma${tag}`
    const email = `ryoma.${tag}@example.jp`
    const phone = `090${String(randomInt(10_000_000, 99_999_999))}`
    const said = `Secret${tag}`

    // An online-shop customer with name, phone and an order.
    await db.transaction().execute(async (trx) => {
      const { id } = await trx
        .insertInto('customer')
        .values({ display_name: shopName, phone })
        .returning('id')
        .executeTakeFirstOrThrow()
      await attachIdentity(trx, id, 'email', email, { env: k.deps.env })
      await recordOrder(trx, k.deps.env, {
        source: 'webshop',
        orderId: `o-${tag}`,
        customer: { email },
        orderedAt: new Date(),
        lines: [{ sku: 'SOFA-1', quantity: 1, unitPrice: 30_000 }],
        total: 30_000,
      })
    })
    // The same person on LINE: follows (welcome + card), writes, links the shop account.
    const user = k.line.users.create({ displayName: lineName })
    await k.line.users.follow(user.userId)
    await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
    await k.line.users.sendText(user.userId, `${said}: I am ${shopName}, ${phone}, ${email}`)
    const linkToken = await tapLinkToken(k, user.userId)
    const dialog = await proveEmail(k, smtp, linkToken, email)
    await k.line.users.accountLink(user.userId, dialog)
    const customerId = await eventually(async () => {
      const row = await db
        .selectFrom('identity as i')
        .innerJoin('line_user as l', 'l.customer_id', 'i.customer_id')
        .select('i.customer_id')
        .where('l.line_uid', '=', user.userId)
        .where('i.kind', '=', 'email')
        .executeTakeFirst()
      expect(row).toBeDefined()
      return row!.customer_id
    })
    const card = await db
      .selectFrom('identity')
      .select('value')
      .where('customer_id', '=', customerId)
      .where('kind', '=', 'member_card')
      .executeTakeFirstOrThrow()

    // Scanned at the register.
    const { key } = await makeStoreKey(db)
    const scan = await fetch(`${k.baseUrl}/api/pos/scans`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ barcode: card.value, receipt: receipt() }),
    })
    expect(scan.status).toBe(200)

    // Campaigns on LINE: one with their name (push), one shared with another friend (multicast).
    for (const channel of ['line', 'email'] as const) {
      await setConsent(db, customerId, {
        category: 'marketing',
        channel,
        granted: true,
        source: 'admin',
      })
    }
    const other = await friend(k)
    const otherId = (
      await db
        .selectFrom('line_user')
        .select('customer_id')
        .where('line_uid', '=', other.userId)
        .executeTakeFirstOrThrow()
    ).customer_id
    await setConsent(db, otherId, {
      category: 'marketing',
      channel: 'line',
      granted: true,
      source: 'admin',
    })
    const campaign = (customer: string, vars: Record<string, unknown>, key: string) => ({
      content: { templateId: 'campaign-sample', vars },
      kind: 'campaign',
      category: 'marketing' as const,
      dedupeKey: `erase-everywhere:${key}:${customer}`,
      customerId: customer,
    })
    const shared = { ...sample, displayName: 'お客様' }
    const onLine = await scheduleDeliveries(k.deps, [
      campaign(customerId, { ...sample, displayName: lineName }, 'named'),
      campaign(customerId, shared, 'shared'),
      campaign(otherId, shared, 'shared'),
    ])
    await settled(onLine)
    expect(
      k.line.requests.some((r) => r.path === '/v2/bot/message/multicast'),
      'a multicast was sent',
    ).toBe(true)

    // Blocked: the next campaign goes by email, and they click its link.
    await k.line.users.block(user.userId)
    await eventually(async () => {
      const lu = await db
        .selectFrom('line_user')
        .select('status')
        .where('line_uid', '=', user.userId)
        .executeTakeFirstOrThrow()
      expect(lu.status).toBe('blocked')
    })
    // Its link is made for them (the shop's page greets them by name): the click records it.
    const personal = `https://shop.example.jp/winter-sale?for=${shopName}`
    const byEmail = await scheduleDeliveries(k.deps, [
      campaign(customerId, { ...sample, displayName: shopName, url: personal }, 'mail'),
    ])
    await settled(byEmail)
    const mail = parseMail(
      await eventually(() => {
        const m = smtp.mails.findLast((x) => x.to.includes(email) && x.raw.includes('/r/'))
        expect(m).toBeDefined()
        return m!.raw
      }),
    )
    const link = /href="([^"]+\/r\/[^"]+)"/.exec(mail.html)?.[1] ?? ''
    const click = await fetch(`${k.baseUrl}${new URL(link).pathname}`, { redirect: 'manual' })
    expect(click.status).toBe(302)
    expect(click.headers.get('location')).toBe(personal)

    // One of their events the worker gave up on, its error quoting what they wrote (as a
    // handler's error can quote its input): stored as onFinalFailure leaves such an event.
    const lost = k.line.buildEvent('postback', user.userId, { data: `action=${said}` })
    await insertWebhookBodies(db, [JSON.stringify(k.line.envelope([lost]))])
    await db
      .updateTable('webhook_event')
      .set({
        status: 'failed',
        last_error: `postback "action=${said}" from ${user.userId} could not be applied`,
      })
      .where('webhook_event_id', '=', lost.webhookEventId)
      .execute()
    const failed = await db
      .selectFrom('webhook_event')
      .select(['status', 'last_error'])
      .where('webhook_event_id', '=', lost.webhookEventId)
      .executeTakeFirstOrThrow()
    expect(failed.status).toBe('failed')

    // A marketer's tag can say something personal too.
    await changeCustomerTags(db, customerId, { add: [`${said} 相談`] })

    const secrets = [lineName, shopName, email, phone, user.userId, card.value, said]
    const before = await findAnywhere(secrets)
    for (const table of [
      'customer',
      'line_user',
      'webhook_event',
      'delivery',
      'delivery_event',
      'identity',
      'customer_tag',
    ]) {
      expect(before.some((f) => f.startsWith(`${table}.`))).toBe(true)
    }
    expect(before.some((f) => f.startsWith('webhook_event.last_error'))).toBe(true)

    const erased = await cli(['customers', 'erase', customerId], {
      LINE_CHANNEL_SECRET: k.deps.env.LINE_CHANNEL_SECRET ?? '',
      LINE_CHANNEL_ACCESS_TOKEN: k.deps.env.LINE_CHANNEL_ACCESS_TOKEN ?? '',
      LINE_API_BASE_URL: k.line.apiBaseUrl,
      LINE_DATA_API_BASE_URL: k.line.dataApiBaseUrl,
    })
    expect(erased.stderr).toBe('')
    expect(erased.code).toBe(0)

    expect(await findAnywhere(secrets)).toEqual([])
    // Purchases stay for statistics, anonymised.
    const purchases = await db
      .selectFrom('purchase')
      .select('total')
      .where('customer_id', '=', customerId)
      .orderBy('total')
      .execute()
    expect(purchases).toEqual([{ total: 8_000 }, { total: 30_000 }])
  }, 60_000)

  it('erases someone while an email to them is under way, and the relay then refuses it', async () => {
    const tag = randomUUID().replaceAll('-', '').slice(0, 10)
    const name = `Okada${tag}`
    const email = `okada.${tag}@example.jp`
    const { id } = await db
      .insertInto('customer')
      .values({ display_name: name, email })
      .returning('id')
      .executeTakeFirstOrThrow()
    await setConsent(db, id, {
      category: 'marketing',
      channel: 'email',
      granted: true,
      source: 'admin',
    })
    // The relay keeps the message waiting at RCPT TO while the person is erased.
    const held = smtp.holdRecipient(email)
    const ids = await scheduleDeliveries(k.deps, [
      {
        content: { templateId: 'campaign-sample', vars: { ...sample, displayName: name } },
        kind: 'campaign',
        category: 'marketing',
        dedupeKey: `erase-everywhere:under-way:${id}`,
        customerId: id,
      },
    ])
    await held.reached
    await eraseCustomer(db, id)
    // Then refuses it, quoting the address, as relays do.
    held.answer({ code: 550, message: `5.1.1 <${email}>: Recipient address rejected` })
    await settled(ids)
    const row = await db
      .selectFrom('delivery')
      .select(['status', 'last_error'])
      .where('id', 'in', ids)
      .executeTakeFirstOrThrow()
    expect(row.status).toBe('failed')
    expect(row.last_error).not.toBeNull()
    expect(await findAnywhere([name, email])).toEqual([])
  }, 60_000)
})
