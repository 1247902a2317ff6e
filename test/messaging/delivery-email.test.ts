import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import sample from '../../flex-templates/campaign-sample.sample.json' with { type: 'json' }
import { createMailer } from '../../src/email/mailer.ts'
import { renderMessage } from '../../src/flex/message-template.ts'
import { type DeliveryIntent, scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import type { Database } from '../../src/platform/db.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { type ParsedMail, parseMail, type Smtp, startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'
import {
  emailCustomer as emailCustomerOf,
  grantMarketingEmail as grantMarketingEmailTo,
  notices,
  sendJob,
  sendTools,
} from './support.ts'

/** Not this server's address: links are followed against k.baseUrl by path. */
const PUBLIC_BASE_URL = 'https://crm.kizuna.test'
const MAIL_FROM = 'Kizuna Shop <shop@kizuna.test>'
const FINAL = ['sent', 'skipped', 'failed', 'cancelled', 'quota_exceeded']

let smtp: Smtp
let k: TestKizuna
let db: Database
beforeAll(async () => {
  smtp = await startSmtp()
  k = await startTestKizuna({ SMTP_URL: smtp.url, MAIL_FROM, PUBLIC_BASE_URL, QUIET_HOURS: '' })
  db = k.deps.db
})
afterAll(async () => {
  await k?.stopAll()
  await smtp?.close()
})

const emailCustomer = (opts: Parameters<typeof emailCustomerOf>[1] = {}) =>
  emailCustomerOf(k.deps, opts)
const grantMarketingEmail = (customerId: string) => grantMarketingEmailTo(k.deps, customerId)

/** A LINE friend (welcomed), optionally with an email address on the customer. */
async function lineFriend(email?: string) {
  const user = k.line.users.create()
  await k.line.users.follow(user.userId)
  await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
  const { customer_id: id } = await db
    .selectFrom('line_user')
    .select('customer_id')
    .where('line_uid', '=', user.userId)
    .executeTakeFirstOrThrow()
  if (email) await db.updateTable('customer').set({ email }).where('id', '=', id).execute()
  return { id, userId: user.userId }
}

async function schedule(
  customerId: string,
  category: 'marketing' | 'transactional',
  sendAfter?: Date,
): Promise<string> {
  const intent: Pick<DeliveryIntent, 'content' | 'kind' | 'category'> =
    category === 'marketing'
      ? { content: { templateId: 'campaign-sample', vars: sample }, kind: 'campaign', category }
      : { content: { templateId: 'member-card' }, kind: 'member-card', category }
  const [id] = await scheduleDeliveries(k.deps, [
    { ...intent, dedupeKey: `test:${randomUUID()}`, customerId, sendAfter },
  ])
  if (!id) throw new Error('no delivery created')
  return id
}

/** Waits until the delivery is finished (sent, skipped, ...) and returns its row. */
const settled = (id: string) =>
  eventually(async () => {
    const row = await db.selectFrom('delivery').selectAll().where('id', '=', id).executeTakeFirst()
    expect(FINAL).toContain(row?.status)
    return row as NonNullable<typeof row>
  })

const onlyMailTo = (address: string): Promise<ParsedMail> =>
  eventually(() => {
    const mails = smtp.mailsTo(address)
    expect(mails).toHaveLength(1)
    return parseMail(mails[0]?.raw ?? '')
  })

const linePushes = (from: number) =>
  k.line.requests.slice(from).filter((r) => r.path.startsWith('/v2/bot/message/'))

const hrefs = (html: string) => [...html.matchAll(/href="([^"]+)"/g)].map((m) => m[1] ?? '')
/** The same path on the running server (PUBLIC_BASE_URL is not its address). */
const onServer = (url: string) => `${k.baseUrl}${new URL(url).pathname}`
const eventsOf = (deliveryId: string) =>
  db
    .selectFrom('delivery_event')
    .select(['kind', 'url'])
    .where('delivery_id', '=', deliveryId)
    .orderBy('created_at')
    .execute()

/** A campaign mailed to a new customer without LINE: the customer, the delivery and the mail. */
async function campaignByEmail() {
  const c = await emailCustomer({ marketingEmail: true })
  const requestsBefore = k.line.requests.length
  const id = await schedule(c.id, 'marketing')
  const mail = await onlyMailTo(c.email)
  const row = await settled(id)
  return { c, id, mail, row, requestsBefore }
}

describe('delivery by email (SMTP)', () => {
  it('mails a marketing delivery to a customer without LINE, tracked and unsubscribable', async () => {
    const { c, mail, row, requestsBefore } = await campaignByEmail()
    const rendered = renderMessage('campaign-sample', sample).email

    expect(mail.headers.get('to')).toBe(c.email)
    expect(mail.headers.get('from')).toBe(MAIL_FROM)
    expect(mail.subject).toBe(rendered.subject)
    expect(mail.subject).toBe(sample.headline)
    const unsubscribe = /^<(.+)>$/.exec(mail.headers.get('list-unsubscribe') ?? '')?.[1] ?? ''
    expect(unsubscribe).toMatch(new RegExp(`^${PUBLIC_BASE_URL}/u/[^/]+$`))
    expect(mail.headers.get('list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click')

    // Every http(s) link of the template goes through /r/; the open pixel is there; the
    // campaign URL is not bare. The unsubscribe link is the mail's own, not a tracked click.
    const links = hrefs(mail.html).filter((link) => link !== unsubscribe)
    expect(links.length).toBeGreaterThanOrEqual(2)
    for (const link of links) expect(link).toMatch(new RegExp(`^${PUBLIC_BASE_URL}/r/[^/]+$`))
    expect(mail.html).toMatch(new RegExp(`<img src="${PUBLIC_BASE_URL}/o/[^"/]+"`))
    expect(mail.html).not.toContain(`href="${sample.url}"`)
    expect(mail.html).toContain(sample.headline)
    expect(mail.text).toContain(sample.body)
    expect(mail.text).toContain(unsubscribe)

    expect(row).toMatchObject({ status: 'sent', channel: 'email', last_error: null })
    expect(row.email_message_id).toBe(mail.headers.get('message-id'))
    expect(linePushes(requestsBefore)).toEqual([])
  })

  it('shows the unsubscribe link in the HTML body, not only in the header and the text', async () => {
    const { mail } = await campaignByEmail()
    // Most readers see the HTML part, and many mail apps show no List-Unsubscribe button: the
    // way out must be in the body they read (Japan's Specified Electronic Mail Act, art. 4).
    const unsubscribe = /^<(.+)>$/.exec(mail.headers.get('list-unsubscribe') ?? '')?.[1] ?? ''
    expect(unsubscribe).not.toBe('')
    expect(hrefs(mail.html)).toContain(unsubscribe)
    expect(mail.html).toContain('配信停止')
    // Before the end of the body, where a reader looks for it.
    expect(mail.html.indexOf(unsubscribe)).toBeLessThan(mail.html.indexOf('</body>'))
  })

  it('follows clicks and opens, unsubscribes in one click, and still sends transactional mail', async () => {
    const { c, id, mail } = await campaignByEmail()
    const click = await fetch(onServer(hrefs(mail.html)[0] ?? ''), { redirect: 'manual' })
    expect(click.status).toBe(302)
    expect(click.headers.get('location')).toBe(sample.url)
    const pixel = /<img src="([^"]+\/o\/[^"]+)"/.exec(mail.html)?.[1] ?? ''
    const open = await fetch(onServer(pixel))
    expect(open.status).toBe(200)
    expect(open.headers.get('content-type')).toBe('image/gif')
    expect((await open.arrayBuffer()).byteLength).toBeGreaterThan(0)
    expect(await eventsOf(id)).toEqual([
      { kind: 'click', url: sample.url },
      { kind: 'open', url: null },
    ])

    // RFC 8058: what a mailbox provider POSTs to the List-Unsubscribe URL.
    const unsubscribe = /^<(.+)>$/.exec(mail.headers.get('list-unsubscribe') ?? '')?.[1] ?? ''
    const res = await fetch(onServer(unsubscribe), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    })
    expect(res.status).toBe(200)
    const consent = await db
      .selectFrom('consent')
      .select(['granted', 'source'])
      .where('customer_id', '=', c.id)
      .where('category', '=', 'marketing')
      .where('channel', '=', 'email')
      .executeTakeFirst()
    expect(consent).toEqual({ granted: false, source: 'email-unsubscribe' })

    const second = await settled(await schedule(c.id, 'marketing'))
    expect(second).toMatchObject({ status: 'skipped', channel: null })
    expect(second.skip_reason).toBe('not_a_friend,no_marketing_consent_email')
    expect(smtp.mailsTo(c.email)).toHaveLength(1)

    // A receipt-like message is not marketing: it still goes by email.
    const card = await settled(await schedule(c.id, 'transactional'))
    expect(card).toMatchObject({ status: 'sent', channel: 'email' })
    const mails = smtp.mailsTo(c.email)
    expect(mails).toHaveLength(2)
    expect(parseMail(mails[1]?.raw ?? '').subject).toContain('会員証 / Your member card')
  })

  it('decides at send time: a friend who blocks before the send gets email; a friend gets LINE', async () => {
    const blocker = await lineFriend(`b-${randomUUID()}@example.com`)
    await grantMarketingEmail(blocker.id)
    const sendAfter = new Date(Date.now() + 2_000)
    const id = await schedule(blocker.id, 'marketing', sendAfter)
    await k.line.users.block(blocker.userId)
    await eventually(async () => {
      const lu = await db
        .selectFrom('line_user')
        .select('status')
        .where('line_uid', '=', blocker.userId)
        .executeTakeFirstOrThrow()
      expect(lu.status).toBe('blocked')
    })
    expect(Date.now(), 'the block was recorded before the delivery was due').toBeLessThan(
      sendAfter.getTime(),
    )
    expect(await settled(id)).toMatchObject({ status: 'sent', channel: 'email' })
    const email = (await db
      .selectFrom('customer')
      .select('email')
      .where('id', '=', blocker.id)
      .executeTakeFirstOrThrow()) as { email: string }
    expect((await onlyMailTo(email.email)).subject).toBe(sample.headline)
    expect(k.line.inbox(blocker.userId)).toHaveLength(1)

    const address = `f-${randomUUID()}@example.com`
    const follower = await lineFriend(address)
    await grantMarketingEmail(follower.id)
    const toFriend = await settled(await schedule(follower.id, 'marketing'))
    expect(toFriend).toMatchObject({ status: 'sent', channel: 'line', email_message_id: null })
    const inbox = k.line.inbox(follower.userId)
    expect(inbox).toHaveLength(2)
    expect(inbox[1]?.message).toMatchObject({ type: 'flex', altText: expect.any(String) })
    expect(JSON.stringify(inbox[1]?.message)).toContain(sample.headline)
    expect(smtp.mailsTo(address)).toEqual([])
    expectNoRejectedRequests(k.line)
  })

  it('skips with reasons when no channel may carry it; transactional stays on LINE after an opt-out', async () => {
    const nobody = await emailCustomer({ email: null })
    const [marketing, transactional] = await Promise.all([
      settled(await schedule(nobody.id, 'marketing')),
      settled(await schedule(nobody.id, 'transactional')),
    ])
    expect(marketing).toMatchObject({ status: 'skipped', skip_reason: 'not_a_friend,no_email' })
    expect(transactional).toMatchObject({ status: 'skipped', skip_reason: 'not_a_friend,no_email' })

    const address = `o-${randomUUID()}@example.com`
    const optedOut = await lineFriend(address)
    await k.line.users.postback(optedOut.userId, 'action=optout')
    await eventually(() => expect(k.line.inbox(optedOut.userId)).toHaveLength(2))
    const offer = await settled(await schedule(optedOut.id, 'marketing'))
    expect(offer).toMatchObject({ status: 'skipped', skip_reason: 'no_marketing_consent_line' })
    const card = await settled(await schedule(optedOut.id, 'transactional'))
    expect(card).toMatchObject({ status: 'sent', channel: 'line' })
    const inbox = k.line.inbox(optedOut.userId)
    expect(inbox).toHaveLength(3)
    expect(inbox[2]?.message).toMatchObject({ type: 'flex' })
    expect(smtp.mailsTo(address)).toEqual([])
  })

  it('neither emails nor pushes to a friend who turned a category off on LINE, though email allows it', async () => {
    // DESIGN.md flows 2 and 3: email goes only when LINE cannot reach the person (blocked, or
    // never a friend). A friend who taps "stop" was told they will no longer get these on LINE;
    // moving them to their inbox is not what they asked for.
    const address = `l-${randomUUID()}@example.com`
    const friend = await lineFriend(address)
    await grantMarketingEmail(friend.id)
    await k.line.users.postback(friend.userId, 'action=optout')
    await k.line.users.postback(friend.userId, 'action=optout&category=transactional')
    await eventually(() => expect(k.line.inbox(friend.userId)).toHaveLength(3))
    expect(JSON.stringify(k.line.inbox(friend.userId)[1]?.message)).toContain(
      'You will no longer receive',
    )
    const requestsBefore = k.line.requests.length

    const offer = await settled(await schedule(friend.id, 'marketing'))
    expect(offer).toMatchObject({
      status: 'skipped',
      channel: null,
      skip_reason: 'no_marketing_consent_line',
    })
    const card = await settled(await schedule(friend.id, 'transactional'))
    expect(card).toMatchObject({
      status: 'skipped',
      channel: null,
      skip_reason: 'no_transactional_consent_line',
    })
    expect(smtp.mailsTo(address)).toEqual([])
    expect(linePushes(requestsBefore)).toEqual([])
    expect(k.line.inbox(friend.userId)).toHaveLength(3)
  })

  it('retries after an SMTP refusal (451) and delivers exactly once', async () => {
    const c = await emailCustomer()
    smtp.refuseNext(451, 'Mailbox busy, try again later')
    const id = await schedule(c.id, 'transactional')
    const waiting = await eventually(async () => {
      const row = await db
        .selectFrom('delivery')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirstOrThrow()
      expect(row).toMatchObject({ status: 'pending', attempts: 1 })
      return row
    })
    expect(waiting.last_error).toMatch(/^email: .*451/)
    expect(smtp.refused).toBe(1)

    const row = await settled(id)
    expect(row).toMatchObject({ status: 'sent', channel: 'email', attempts: 2, last_error: null })
    // The job is done for good: nothing more will be sent.
    await eventually(async () => {
      const jobs = await k.deps.queues.byName.delivery.getJobs(['completed'])
      const job = jobs.find((j) => j.data.deliveryIds?.includes(id))
      expect(job?.attemptsMade).toBeGreaterThanOrEqual(1)
    })
    const mails = smtp.mailsTo(c.email)
    expect(mails).toHaveLength(1)
    expect(row.email_message_id).toBe(parseMail(mails[0]?.raw ?? '').headers.get('message-id'))
    // One Message-ID per delivery, whatever the attempt: a resend after a lost SMTP answer is a
    // duplicate that mail systems drop.
    expect(row.email_message_id).toBe(`<kizuna.delivery.${id}@kizuna.test>`)
  })

  it("names the Message-ID after the sender's address, whatever its display name holds", async () => {
    // A display name may hold an @ (`渋谷店@Kizuna`, or quoted `"a@b"`): the domain is the
    // address's, the one the relay's SPF and DMARC judge.
    for (const from of ['渋谷店@Kizuna <shop@shop.kizuna.test>', '"a@b" <shop@shop.kizuna.test>']) {
      const env = { ...k.deps.env, MAIL_FROM: from }
      const mailer = createMailer(env, db, { sandbox: false })
      try {
        const c = await emailCustomer()
        const [id] = (await notices(k.deps, [c.id])) as [string]
        await sendJob(k, { ...sendTools(k), mailer }, { ...k.deps, env })([id])
        const mail = await onlyMailTo(c.email)
        const messageId = `<kizuna.delivery.${id}@shop.kizuna.test>`
        expect(mail.headers.get('message-id')).toBe(messageId)
        expect((await settled(id)).email_message_id).toBe(messageId)
      } finally {
        mailer.close()
      }
    }
  })

  it('fails at once when the SMTP server refuses for good (550), without retrying', async () => {
    const c = await emailCustomer()
    smtp.refuseNext(550, 'No such user here')
    const id = await schedule(c.id, 'transactional')
    const row = await settled(id)
    expect(row).toMatchObject({ status: 'failed', attempts: 1 })
    expect(row.last_error).toMatch(/^email: .*550/)
    expect(smtp.mailsTo(c.email)).toHaveLength(0)
  })
})
