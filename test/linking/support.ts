import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, expect } from 'vitest'
import { attachIdentity } from '../../src/customers/merge.service.ts'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { recordOrder } from '../../src/orders/order.service.ts'
import type { AccountLinkDialog } from '../../src/sandbox/users.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { type ReceivedMail, type Smtp, startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'

export { type ReceivedMail, type Smtp, startSmtp } from '../support/smtp.ts'

/**
 * The file's Kizuna, sending codes to its own SMTP catcher: started before the file's tests,
 * stopped after (`opts` as startTestKizuna takes them: a log to read). Read `k` and `smtp` inside
 * the tests.
 */
export function kizunaWithSmtp(
  overrides: Record<string, string> = {},
  opts: Parameters<typeof startTestKizuna>[1] = {},
) {
  const started = {} as { k: TestKizuna; smtp: Smtp }
  beforeAll(async () => {
    started.smtp = await startSmtp()
    started.k = await startTestKizuna(
      {
        SMTP_URL: started.smtp.url,
        PUBLIC_BASE_URL: 'https://shop.example',
        ...overrides,
      },
      opts,
    )
  })
  afterAll(async () => {
    await started.k?.stopAll()
    await started.smtp?.close()
  })
  return started
}

/** The code in the newest mail to `email` (it is in the ASCII subject line). */
export async function codeMailedTo(smtp: Smtp, email: string, after = 0): Promise<string> {
  const mail = await eventually(() => {
    const m = smtp.mails.slice(after).findLast((x) => x.to.includes(email))
    expect(m).toBeDefined()
    return m as ReceivedMail
  })
  const code = /^Subject: Your verification code: (\d{6})/m.exec(mail.raw)?.[1]
  if (!code) throw new Error('no code in the mail')
  return code
}

export async function friend(k: TestKizuna) {
  const user = k.line.users.create()
  await k.line.users.follow(user.userId)
  await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
  return user
}

/** A fresh shopper's email address. */
export const newEmail = () => `shopper-${randomUUID().slice(0, 8)}@example.jp`

/** Taps "link" and returns the link URL from the (new) button LINE shows. */
export async function tapLink(k: TestKizuna, userId: string): Promise<URL> {
  const buttons = () => k.line.inbox(userId).filter((e) => e.message.type === 'template')
  const before = buttons().length
  await k.line.users.postback(userId, 'action=link')
  const entry = await eventually(() => {
    expect(buttons().length).toBeGreaterThan(before)
    return buttons().at(-1)
  })
  const template = entry?.message.template as { actions: { uri: string }[] }
  return new URL(template.actions[0]?.uri ?? '')
}

export const post = (url: string, form: Record<string, string>) =>
  fetch(url, { method: 'POST', body: new URLSearchParams(form), redirect: 'manual' })

export const hidden = (page: string, name: string) =>
  new RegExp(`name="${name}" value="([^"]*)"`).exec(page)?.[1] ?? ''

/**
 * Where Kizuna sent the shopper: LINE's account-link dialog for this link token. Returns the
 * dialog's link token and nonce, which the simulated user then opens (`users.accountLink`).
 */
export function dialogOf(res: Response, linkToken: string): AccountLinkDialog {
  expect(res.status).toBe(302)
  const to = new URL(res.headers.get('location') ?? '')
  expect(`${to.origin}${to.pathname}`).toBe('https://access.line.me/dialog/bot/accountLink')
  expect(to.searchParams.get('linkToken')).toBe(linkToken)
  return {
    linkToken: to.searchParams.get('linkToken') ?? '',
    nonce: to.searchParams.get('nonce') ?? '',
  }
}

/**
 * The error an account-link page shows the shopper (its alert), as text: with `status`, saying
 * `en` in English and `ja` in Japanese, and nothing of a schema's wording anywhere on the page
 * (zod's "Invalid input", a field name such as "linkToken:"). Returns the page's HTML.
 */
export async function expectShopperError(
  res: Response,
  status: number,
  said: { en: string; ja: string },
): Promise<string> {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toContain('text/html')
  const page = await res.text()
  const alert = /<p class="error" role="alert">([\s\S]*?)<\/p>/.exec(page)?.[1]
  expect(alert, 'the page has no error').toBeDefined()
  const text = (alert ?? '')
    .replace(/<br \/>/g, '\n')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
  expect(text).toContain(said.en)
  expect(text).toContain(said.ja)
  expect(page).not.toMatch(/Invalid input|expected string|received undefined/)
  expect(text).not.toMatch(/^\s*(linkToken|email|code|codeId|assertion):/m)
  return page
}

/** Runs the web part: email → code → the redirect to LINE's account-link dialog. */
export async function proveEmail(
  k: TestKizuna,
  smtp: Smtp,
  linkToken: string,
  email: string,
): Promise<AccountLinkDialog> {
  const before = smtp.mails.length
  const page = await post(`${k.baseUrl}/link/email`, { linkToken, email })
  expect(page.status).toBe(200)
  const codeId = hidden(await page.text(), 'codeId')
  const code = await codeMailedTo(smtp, email, before)
  return dialogOf(await post(`${k.baseUrl}/link/code`, { linkToken, codeId, code }), linkToken)
}

/** Taps "link" (again) and returns the link token on the (new) button LINE shows. */
export async function tapLinkToken(k: TestKizuna, userId: string): Promise<string> {
  return (await tapLink(k, userId)).searchParams.get('linkToken') ?? ''
}

/** A new friend's link token: they follow, then tap "link". */
export async function newFriendLinkToken(k: TestKizuna): Promise<string> {
  return tapLinkToken(k, (await friend(k)).userId)
}

/** The nonces (their hashes) issued for these link tokens. */
export const noncesIssuedFor = (k: TestKizuna, ...linkTokens: string[]) =>
  k.deps.db
    .selectFrom('link_nonce')
    .select('nonce_hash')
    .where('link_token_hash', 'in', linkTokens.map(sha256))
    .execute()

/** Friend → link button → email code → LINE's dialog (its nonce also as `nonce`). */
export async function linkedUpTo(k: TestKizuna, smtp: Smtp, email: string) {
  const user = await friend(k)
  const linkToken = await tapLinkToken(k, user.userId)
  const dialog = await proveEmail(k, smtp, linkToken, email)
  return { user, linkToken, dialog, nonce: dialog.nonce }
}

/**
 * Reads for link tests: a LINE user's row, a customer's identity kinds and purchase count, the
 * texts LINE showed a user. `kizuna` is read at each call (it is started in beforeAll).
 */
export function linkReads(kizuna: () => TestKizuna) {
  const db = () => kizuna().deps.db
  const texts = (uid: string) =>
    kizuna()
      .line.inbox(uid)
      .map((e) => JSON.stringify(e.message))
  return {
    lineUser: (uid: string) =>
      db()
        .selectFrom('line_user')
        .selectAll()
        .where('line_uid', '=', uid)
        .executeTakeFirstOrThrow(),
    identitiesOf: async (customerId: string) =>
      (
        await db()
          .selectFrom('identity')
          .select(['kind'])
          .where('customer_id', '=', customerId)
          .orderBy('kind')
          .execute()
      ).map((i) => i.kind),
    purchasesOf: async (customerId: string) =>
      (
        await db()
          .selectFrom('purchase')
          .select('id')
          .where('customer_id', '=', customerId)
          .execute()
      ).length,
    /** The link audit's actions for a LINE user (its row id), oldest first. */
    auditActionsOf: async (lineUserId: string) =>
      (
        await db()
          .selectFrom('link_audit')
          .select('action')
          .where('line_user_id', '=', lineUserId)
          .orderBy('created_at')
          .execute()
      ).map((a) => a.action),
    texts,
    waitForText: (uid: string, part: string) =>
      eventually(() => expect(texts(uid).some((t) => t.includes(part))).toBe(true)),
  }
}

type ShopAccount = { email: string } | { externalId: string }

/** An online order by the shop account (its email or its shop customer id). */
export const onlineOrder = (customer: ShopAccount, total = 50_000) => ({
  source: 'webshop',
  orderId: `o-${randomUUID()}`,
  customer,
  orderedAt: new Date(),
  lines: [{ sku: 'SOFA-1', quantity: 1, unitPrice: total }],
  total,
})

/** An online-shop customer (an email or shop customer id identity) with one order. */
export async function onlineCustomer(
  k: TestKizuna,
  account: ShopAccount,
  total?: number,
): Promise<string> {
  return k.deps.db.transaction().execute(async (trx) => {
    const { id } = await trx
      .insertInto('customer')
      .defaultValues()
      .returning('id')
      .executeTakeFirstOrThrow()
    const [kind, value] =
      'email' in account
        ? (['email', account.email] as const)
        : (['online_customer', account.externalId] as const)
    await attachIdentity(trx, id, kind, value, { env: k.deps.env })
    await recordOrder(trx, k.deps.env, onlineOrder(account, total))
    return id
  })
}

/**
 * Shop account `shopId` comes to the customer as an order matched by their email does: the
 * customer has an email (given by a customer import, say) and an order names it with `shopId`.
 */
export async function shopAccountByOrder(k: TestKizuna, customerId: string, shopId: string) {
  const email = newEmail()
  await k.deps.db.transaction().execute(async (trx) => {
    await attachIdentity(trx, customerId, 'email', email, { env: k.deps.env })
    const order = await recordOrder(trx, k.deps.env, onlineOrder({ externalId: shopId, email }))
    expect(order.customerId).toBe(customerId)
  })
}
