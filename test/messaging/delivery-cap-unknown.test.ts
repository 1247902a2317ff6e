import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { type DeliveryIntent, scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { type Smtp, startSmtp } from '../support/smtp.ts'
import {
  campaign,
  campaignInbox,
  deliveryRow,
  emailCustomer,
  type Friend,
  newFriend,
  PUSH,
  QUOTA_EXCEEDED,
  SAMPLE,
  sendJob,
  sendTools,
  WEEK_MS,
} from './support.ts'

const REPLY = '/v2/bot/message/reply'

/**
 * A marketing delivery whose outcome is unknown may have reached the person: it counts in their
 * week like one sent, so another campaign waits for room. So do a reply or an email failed as of
 * unknown outcome (never sent again), one a stopped worker left under way, and a push parked by
 * the quota's 429 after a 5xx.
 */
describe('the weekly cap and deliveries of unknown outcome', () => {
  let k: TestKizuna
  let smtp: Smtp
  let send: ReturnType<typeof sendJob>

  beforeAll(async () => {
    smtp = await startSmtp()
    k = await startTestKizuna({
      QUIET_HOURS: '',
      MARKETING_WEEKLY_CAP: '1',
      SMTP_URL: smtp.url,
      MAIL_FROM: 'Kizuna Shop <shop@kizuna.test>',
      PUBLIC_BASE_URL: 'https://crm.kizuna.test',
    })
    // A short lease: an email the server never answers is given up on in about a second.
    send = sendJob(k, { ...sendTools(k), leaseSeconds: 5 })
  })
  afterAll(async () => {
    smtp?.answerStalled()
    await k?.stopAll()
    await smtp?.close()
  })
  beforeEach(async () => {
    smtp.stall(null)
    await k.deps.queues.byName.delivery.resume()
  })

  /** The second campaign waits for room a week on, unsent (sent in one job with `claim`). */
  async function expectHeld(id: string, claim = [id]) {
    await send(claim)
    const row = await deliveryRow(k, id)
    expect(row.status).toBe('pending')
    expect(row.send_after.getTime()).toBeGreaterThan(Date.now() + WEEK_MS / 2)
  }

  const pauseQueue = () => k.deps.queues.byName.delivery.pause() // the test plays the workers

  /** A campaign answering the friend's tap, by reply while the token is fresh. */
  async function replyCampaign(f: Friend): Promise<DeliveryIntent> {
    const lineUser = await k.deps.db
      .selectFrom('line_user')
      .select('id')
      .where('line_uid', '=', f.userId)
      .executeTakeFirstOrThrow()
    const reply = { token: randomUUID(), expiresAt: new Date(Date.now() + 50_000) }
    return { ...campaign(f), reply: { ...reply, lineUserId: lineUser.id } }
  }

  /** A marketing campaign by email to this customer. */
  const byEmail = (customerId: string): DeliveryIntent => ({
    dedupeKey: `campaign-test:${randomUUID()}`,
    kind: 'campaign',
    category: 'marketing',
    customerId,
    content: { templateId: 'campaign-sample', vars: SAMPLE },
  })

  it('an email the server got whole and never answered counts', async () => {
    const { id: customerId, email } = await emailCustomer(k.deps, { marketingEmail: true })
    await pauseQueue()
    const [first] = (await scheduleDeliveries(k.deps, [byEmail(customerId)])) as [string]
    smtp.stall('DATA')
    await send([first])
    smtp.stall(null)
    expect((await deliveryRow(k, first)).last_error).toMatch(/^email outcome unknown/)
    const [second] = (await scheduleDeliveries(k.deps, [byEmail(customerId)])) as [string]

    await expectHeld(second)
    expect(smtp.mailsTo(email)).toHaveLength(1)
  })

  it('a reply that got a 500 counts', async () => {
    const f = await newFriend(k)
    await pauseQueue()
    const [first] = (await scheduleDeliveries(k.deps, [await replyCampaign(f)])) as [string]
    k.line.failNext({ method: 'POST', path: REPLY, status: 500, count: 1 })
    await send([first])
    expect((await deliveryRow(k, first)).last_error).toMatch(/^reply outcome unknown/)
    const [second] = (await scheduleDeliveries(k.deps, [campaign(f)])) as [string]

    await expectHeld(second)
  })

  it('a reply the worker stopped during counts for another delivery of the same claim', async () => {
    const f = await newFriend(k)
    await pauseQueue()
    const [first, second] = (await scheduleDeliveries(k.deps, [
      await replyCampaign(f),
      campaign(f),
    ])) as [string, string]
    // A worker stopped while LINE had its reply (it may have arrived), and its lease ran out.
    await sql`update delivery set status = 'sending', attempts = 1, reply_state = 'trying',
      updated_at = now() - interval '1 hour' where id = ${first}`.execute(k.deps.db)

    await expectHeld(second, [first, second])
    expect((await deliveryRow(k, first)).last_error).toMatch(/^reply outcome unknown/)
    expect(campaignInbox(k, f.userId)).toHaveLength(0)
  })

  it('an email the worker stopped during counts for another delivery of the same claim', async () => {
    const { id: customerId, email } = await emailCustomer(k.deps, { marketingEmail: true })
    await pauseQueue()
    const [first, second] = (await scheduleDeliveries(k.deps, [
      byEmail(customerId),
      byEmail(customerId),
    ])) as [string, string]
    // A worker stopped while the server had the email (it may have arrived), and its lease ran
    // out.
    await sql`update delivery set status = 'sending', attempts = 1, email_trying_at = now(),
      updated_at = now() - interval '1 hour' where id = ${first}`.execute(k.deps.db)

    await expectHeld(second, [first, second])
    expect((await deliveryRow(k, first)).last_error).toMatch(/^email outcome unknown/)
    expect(smtp.mailsTo(email)).toHaveLength(0)
  })

  it('a push parked by the quota after a 500 counts', async () => {
    const f = await newFriend(k)
    await pauseQueue()
    const [first] = (await scheduleDeliveries(k.deps, [campaign(f)])) as [string]
    k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 1, carriedOut: true })
    await expect(send([first])).rejects.toThrow(/failed for now/)
    k.line.failNext({ method: 'POST', path: PUSH, status: 429, body: { message: QUOTA_EXCEEDED } })
    await send([first])
    expect((await deliveryRow(k, first)).status).toBe('quota_exceeded')
    const [second] = (await scheduleDeliveries(k.deps, [campaign(f)])) as [string]

    await expectHeld(second)
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })
})
