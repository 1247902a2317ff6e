import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { saveProducts } from '../../src/catalogue/product.service.ts'
import { setConsent } from '../../src/consent/consent.service.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import { makeCustomer, makeStoreKey, recordOnlinePurchase } from '../purchases/fixtures.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { parseMail, type Smtp, startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'
import { tokyoHhMm } from './support.ts'

const s = randomUUID().slice(0, 8)
const sku = (name: string) => `${name}-${s}`
const NAMES = {
  sofa: 'Garden Sofa Teak',
  parasol: 'Sun Parasol 270',
  armchair: 'Teak Armchair',
  table: 'Teak Side Table',
}

let smtp: Smtp
beforeAll(async () => {
  smtp = await startSmtp()
})
afterAll(async () => {
  await smtp?.close()
})

/** Kizuna with this post-purchase delay (and env), a store key and a garden catalogue. */
function kizunaWithDelay(delaySeconds: number, env: () => Record<string, string> = () => ({})) {
  const ctx = {} as { k: TestKizuna; db: Database; key: string }
  beforeAll(async () => {
    ctx.k = await startTestKizuna({
      SMTP_URL: smtp.url,
      PUBLIC_BASE_URL: 'https://crm.kizuna.test',
      POST_PURCHASE_DELAY_SECONDS: String(delaySeconds),
      QUIET_HOURS: '',
      ...env(),
    })
    ctx.db = ctx.k.deps.db
    ctx.key = (await makeStoreKey(ctx.db)).key
    await saveProducts(ctx.db, [
      {
        sku: sku('SOFA'),
        name: NAMES.sofa,
        price: 98_000,
        related_skus: [sku('TABLE'), sku('PARASOL'), sku('ARMCHAIR')],
      },
      { sku: sku('PARASOL'), name: NAMES.parasol, price: 24_000 },
      { sku: sku('ARMCHAIR'), name: NAMES.armchair, price: 45_000 },
      { sku: sku('TABLE'), name: NAMES.table, price: 12_000 },
    ])
  })
  afterAll(async () => {
    await ctx.k?.stopAll()
  })
  return ctx
}

type Ctx = ReturnType<typeof kizunaWithDelay>

/** A LINE friend (welcomed with a member card) and that card's number. */
async function friendWithCard({ k, db }: Ctx) {
  const user = k.line.users.create()
  await k.line.users.follow(user.userId)
  await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
  const card = await db
    .selectFrom('identity')
    .innerJoin('line_user', 'line_user.customer_id', 'identity.customer_id')
    .select(['identity.customer_id', 'identity.value'])
    .where('line_user.line_uid', '=', user.userId)
    .where('identity.kind', '=', 'member_card')
    .executeTakeFirstOrThrow()
  return { userId: user.userId, customerId: card.customer_id, card: card.value }
}

/** The customer already owns the side table (an online order: no follow-up of its own). */
async function ownsTable({ k, db }: Ctx, customerId: string) {
  await recordOnlinePurchase(db, k.deps.env, customerId, [{ sku: sku('TABLE'), unitPrice: 12_000 }])
}

/** Scans the card with a receipt for the garden sofa; returns the receipt id and its delivery. */
function buySofa(ctx: Ctx, card: string) {
  return buy(ctx, card, 'SOFA', 98_000)
}

/** Scans the card with a receipt for one of a product; returns the receipt id and its delivery. */
async function buy({ k, db, key }: Ctx, card: string, product: string, price: number) {
  const receiptId = `R-${randomUUID()}`
  const res = await fetch(`${k.baseUrl}/api/pos/scans`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({
      barcode: card,
      receipt: {
        id: receiptId,
        purchasedAt: new Date().toISOString(),
        lines: [{ sku: sku(product), name: 'register line', quantity: 1, unitPrice: price }],
        total: price,
      },
    }),
  })
  expect(res.status).toBe(200)
  const purchase = ((await res.json()) as ScanResponse).purchase
  if (!purchase) throw new Error('no purchase in the answer')
  const row = await db
    .selectFrom('delivery')
    .select('id')
    .where('dedupe_key', '=', `post-purchase:${purchase.id}`)
    .executeTakeFirstOrThrow()
  return { receiptId, deliveryId: row.id }
}

/** The customer's marketing consent on this channel, as given at the desk. */
const consent = (db: Database, customerId: string, channel: 'line' | 'email', granted: boolean) =>
  setConsent(db, customerId, { category: 'marketing', channel, granted, source: 'admin' })

const deliveryRow = (db: Database, id: string) =>
  db.selectFrom('delivery').selectAll().where('id', '=', id).executeTakeFirstOrThrow()

/** Waits until the delivery's job has run for good (nothing can be sent after that). */
const jobDone = ({ k }: Ctx, deliveryId: string) =>
  eventually(async () => {
    const jobs = await k.deps.queues.byName.delivery.getJobs(['completed'])
    expect(jobs.some((j) => j.data.deliveryIds?.includes(deliveryId))).toBe(true)
  })

describe('post-purchase follow-up, 1 s after the scan', () => {
  const ctx = kizunaWithDelay(1)

  it('sends a friend a Flex with the receipt and related items not owned, by push with the retry key', async () => {
    const { k, db } = ctx
    const f = await friendWithCard(ctx)
    await ownsTable(ctx, f.customerId)
    const { deliveryId } = await buySofa(ctx, f.card)

    const entry = await eventually(() => {
      const inbox = k.line.inbox(f.userId)
      expect(inbox).toHaveLength(2)
      return inbox[1]
    })
    expect(entry?.endpoint).toBe('push')
    expect(entry?.message).toMatchObject({ type: 'flex' })
    const flex = JSON.stringify(entry?.message)
    expect(flex).toContain(NAMES.sofa)
    expect(flex).toContain('¥98,000')
    expect(flex).toContain(NAMES.parasol)
    expect(flex).toContain(NAMES.armchair)
    expect(flex).not.toContain(NAMES.table)

    const row = await eventually(async () => {
      const r = await deliveryRow(db, deliveryId)
      expect(r.status).toBe('sent')
      return r
    })
    expect(row).toMatchObject({ channel: 'line', kind: 'post-purchase', attempts: 1 })
    // Not before the delay.
    expect(row.send_after.getTime() - row.created_at.getTime()).toBeGreaterThanOrEqual(900)
    expect(row.sent_at?.getTime()).toBeGreaterThanOrEqual(row.send_after.getTime())

    const pushes = k.line
      .requestsTo('POST', '/v2/bot/message/push')
      .filter((r) => (r.body as { to?: string }).to === f.userId)
    expect(pushes).toHaveLength(1)
    expect(pushes[0]?.headers['x-line-retry-key']).toBe(row.line_retry_key)
    expect(row.line_request_id).toBe(entry?.requestId)
    expectNoRejectedRequests(k.line)
  })

  it("sends the follow-up of a long receipt (60 lines, long names) within LINE's bubble size", async () => {
    const { k, db, key } = ctx
    const f = await friendWithCard(ctx)
    const lines = Array.from({ length: 60 }, (_, i) => ({
      sku: `ITEM-${s}-${i}`,
      name: `${'長い商品名'.repeat(30)} ${i}`,
      quantity: 1,
      unitPrice: 100,
    }))
    const res = await fetch(`${k.baseUrl}/api/pos/scans`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({
        barcode: f.card,
        receipt: {
          id: `R-${randomUUID()}`,
          purchasedAt: new Date().toISOString(),
          lines,
          total: 6_000,
        },
      }),
    })
    expect(res.status).toBe(200)
    const purchase = ((await res.json()) as ScanResponse).purchase!
    const row = await db
      .selectFrom('delivery')
      .select('id')
      .where('dedupe_key', '=', `post-purchase:${purchase.id}`)
      .executeTakeFirstOrThrow()
    await jobDone(ctx, row.id)
    const done = await deliveryRow(db, row.id)
    expect(done.last_error).toBeNull()
    expect(done).toMatchObject({ status: 'sent', channel: 'line' })
    const message = k.line.inbox(f.userId)[1]?.message as { contents: unknown }
    const flex = JSON.stringify(message)
    expect(Buffer.byteLength(JSON.stringify(message.contents))).toBeLessThanOrEqual(30_000)
    // The first lines shown, the rest summed up (46 items, ¥4,600), the receipt's total kept.
    expect(flex).toContain(`${'長い商品名'.repeat(30)} 0`)
    expect(flex).toContain('ほか46品目 / 46 more items')
    expect(flex).toContain('×46')
    expect(flex).toContain('¥4,600')
    expect(flex).toContain('¥6,000')
    expectNoRejectedRequests(k.line)
  })

  // A product imported with an image URL the URL parser takes but RFC 3986 (the template's
  // `format: "uri"`) refuses: `{`, `}`, `^`, a backtick, a backslash, a second `#`.
  it('sends the follow-up of a product whose image URL has {, ^ or a second # in it, the URL percent-encoded', async () => {
    const { k, db } = ctx
    await saveProducts(db, [
      { sku: sku('BENCH'), name: 'Teak Bench', price: 30_000, related_skus: [sku('LANTERN')] },
      {
        sku: sku('LANTERN'),
        name: 'Garden Lantern',
        price: 8_000,
        image_url: 'https://cdn.example.com/p.jpg?v={1}&c=^`\\#a#b',
      },
    ])
    const f = await friendWithCard(ctx)
    const { deliveryId } = await buy(ctx, f.card, 'BENCH', 30_000)

    await jobDone(ctx, deliveryId)
    const row = await deliveryRow(db, deliveryId)
    expect(row.last_error).toBeNull()
    expect(row).toMatchObject({ status: 'sent', channel: 'line' })
    const pushes = k.line
      .requestsTo('POST', '/v2/bot/message/push')
      .filter((r) => (r.body as { to?: string }).to === f.userId)
    expect(pushes).toHaveLength(1) // the follow-up (the welcome card is a reply)
    const flex = JSON.stringify(pushes[0]?.body)
    expect(flex).toContain('Garden Lantern')
    expect(flex).toContain('"url":"https://cdn.example.com/p.jpg?v=%7B1%7D&c=%5E%60%5C#a%23b"')
    expectNoRejectedRequests(k.line)
  })

  it('mails the follow-up to a customer who is not a LINE friend but agreed to marketing email', async () => {
    const { k, db } = ctx
    const c = await makeCustomer(db, { displayName: 'Suzuki Taro' })
    const email = `pp-${randomUUID()}@example.com`
    await db.updateTable('customer').set({ email }).where('id', '=', c.id).execute()
    await consent(db, c.id, 'email', true)
    const pushesBefore = k.line.requestsTo('POST', '/v2/bot/message/push').length
    const { deliveryId } = await buySofa(ctx, c.card)

    const raw = await eventually(() => {
      const mails = smtp.mailsTo(email)
      expect(mails).toHaveLength(1)
      return mails[0]?.raw ?? ''
    })
    const mail = parseMail(raw)
    expect(mail.subject).toBe(
      'Test storeでのご購入ありがとうございました / Thank you for your purchase',
    )
    for (const part of [mail.html, mail.text]) {
      expect(part).toContain('Suzuki Taro')
      expect(part).toContain(NAMES.sofa)
      expect(part).toContain(NAMES.parasol)
      expect(part).toContain(NAMES.armchair)
    }
    expect(mail.headers.get('list-unsubscribe')).toMatch(
      /^<https:\/\/crm\.kizuna\.test\/u\/[^/]+>$/,
    )

    await jobDone(ctx, deliveryId)
    const row = await deliveryRow(db, deliveryId)
    expect(row).toMatchObject({ status: 'sent', channel: 'email', line_request_id: null })
    expect(row.email_message_id).toBe(mail.headers.get('message-id'))
    expect(k.line.requestsTo('POST', '/v2/bot/message/push')).toHaveLength(pushesBefore)
    expect(smtp.mailsTo(email)).toHaveLength(1)
  })
  // The follow-up recommends products: advertising, so a marketing message. Opting out of
  // marketing stops it, and transactional messages still come (DESIGN.md, consent).
  it('sends no follow-up to a friend who opted out of marketing, neither on LINE nor by email', async () => {
    const { k, db } = ctx
    const f = await friendWithCard(ctx)
    const email = `oo-${randomUUID()}@example.com`
    await db.updateTable('customer').set({ email }).where('id', '=', f.customerId).execute()
    await consent(db, f.customerId, 'line', false)
    await consent(db, f.customerId, 'email', false)
    const { deliveryId } = await buySofa(ctx, f.card)

    await jobDone(ctx, deliveryId)
    expect(await deliveryRow(db, deliveryId)).toMatchObject({
      status: 'skipped',
      category: 'marketing',
      skip_reason: 'no_marketing_consent_line',
      sent_at: null,
    })
    expect(k.line.inbox(f.userId)).toHaveLength(1) // the welcome only
    expect(smtp.mailsTo(email)).toEqual([])

    // A transactional message still reaches them.
    const [noticeId] = await scheduleDeliveries(k.deps, [
      {
        dedupeKey: `notice-test:${randomUUID()}`,
        kind: 'notice',
        category: 'transactional',
        customerId: f.customerId,
        content: { messages: [{ type: 'text', text: 'Your warranty ends next month.' }] },
      },
    ])
    await eventually(async () =>
      expect(await deliveryRow(db, noticeId!)).toMatchObject({ status: 'sent', channel: 'line' }),
    )
    expect(k.line.inbox(f.userId)).toHaveLength(2)
  })

  // Japan's opt-in rule for advertising email: no mail until the person agreed.
  it('mails no follow-up to a customer who never agreed to marketing email', async () => {
    const { db } = ctx
    const c = await makeCustomer(db)
    const email = `na-${randomUUID()}@example.com`
    await db.updateTable('customer').set({ email }).where('id', '=', c.id).execute()
    const { deliveryId } = await buySofa(ctx, c.card)

    await jobDone(ctx, deliveryId)
    expect(await deliveryRow(db, deliveryId)).toMatchObject({
      status: 'skipped',
      skip_reason: 'not_a_friend,no_marketing_consent_email',
    })
    expect(smtp.mailsTo(email)).toEqual([])
  })
})

describe('post-purchase follow-up due in quiet hours', () => {
  /** The window's end: an hour from when the window was set, to the minute. */
  let windowEnd: Date
  const ctx = kizunaWithDelay(1, () => {
    const now = new Date()
    windowEnd = new Date(Math.floor(now.getTime() / 60_000) * 60_000 + 60 * 60_000)
    const start = tokyoHhMm(new Date(now.getTime() - 60 * 60_000))
    const end = tokyoHhMm(new Date(now.getTime() + 60 * 60_000))
    return { QUIET_HOURS: `${start}-${end}`, TZ_STORE: 'Asia/Tokyo' }
  })

  it('waits for the end of quiet hours', async () => {
    const { k, db } = ctx
    const f = await friendWithCard(ctx)
    const { deliveryId } = await buySofa(ctx, f.card)

    const row = await eventually(async () => {
      const r = await deliveryRow(db, deliveryId)
      expect(r).toMatchObject({ status: 'pending', attempts: 1 })
      return r
    })
    expect(Math.abs(row.send_after.getTime() - windowEnd.getTime())).toBeLessThanOrEqual(60_000)
    expect(row.sent_at).toBeNull()
    expect(k.line.inbox(f.userId)).toHaveLength(1) // the welcome only
  })
})

describe('post-purchase follow-up of a receipt voided within the delay (3 s)', () => {
  const ctx = kizunaWithDelay(3)

  it('sends nothing and leaves the delivery cancelled', async () => {
    const { k, db, key } = ctx
    const f = await friendWithCard(ctx)
    const email = `v-${randomUUID()}@example.com`
    await db.updateTable('customer').set({ email }).where('id', '=', f.customerId).execute()
    const { receiptId, deliveryId } = await buySofa(ctx, f.card)

    const res = await fetch(`${k.baseUrl}/api/pos/receipts/${encodeURIComponent(receiptId)}/void`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: '{}',
    })
    expect(res.status).toBe(200)
    const cancelled = await deliveryRow(db, deliveryId)
    expect(cancelled.status).toBe('cancelled')
    expect(Date.now(), 'voided before the follow-up was due').toBeLessThan(
      cancelled.send_after.getTime(),
    )

    // The delayed job comes due and finds nothing to send.
    await jobDone(ctx, deliveryId)
    expect(await deliveryRow(db, deliveryId)).toMatchObject({
      status: 'cancelled',
      skip_reason: 'receipt voided',
      attempts: 0,
      sent_at: null,
      channel: null,
    })
    expect(k.line.inbox(f.userId)).toHaveLength(1)
    expect(smtp.mailsTo(email)).toEqual([])
  })
})
