import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { importCustomerRow } from '../../src/customers/customer-import.service.ts'
import { signLinkAssertion } from '../../src/linking/link-assertion.ts'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'
import { eventually } from '../support/wait.ts'
import {
  dialogOf,
  expectShopperError,
  friend,
  linkReads,
  onlineCustomer,
  shopAccountByOrder,
  tapLink,
} from './support.ts'

// Account link through the shop's own login (LINK_LOGIN_URL), and no SMTP_URL: the login is the
// only way to prove an account, and it is enough to offer the link.
const SECRET = 'shop-login-assertion-secret-0123456789'
const LOGIN_URL = 'https://shop.example/login?lang=ja'
const PUBLIC_BASE_URL = 'https://kizuna.example'
let k: TestKizuna
const logs = logSink()

beforeAll(async () => {
  k = await startTestKizuna(
    { LINK_LOGIN_URL: LOGIN_URL, LINK_ASSERTION_SECRET: SECRET, PUBLIC_BASE_URL },
    { log: createLogger('info', logs.sink) },
  )
})
afterAll(async () => {
  await k?.stopAll()
})

const { lineUser, identitiesOf, purchasesOf, waitForText } = linkReads(() => k)
const newShopId = () => `SHOP-${randomUUID().slice(0, 8)}`

/** What the shop's login sends back: the account, the link token, valid for `seconds`. */
const assertionFor = (linkToken: string, account: object, seconds = 300, secret = SECRET) =>
  signLinkAssertion(secret, {
    ...account,
    linkToken,
    exp: Math.floor(Date.now() / 1000) + seconds,
  })

/** The shop's login returning the shopper to its configured Kizuna callback (`?assertion=`). */
const callback = (assertion: string) =>
  fetch(`${k.baseUrl}/link/callback?assertion=${encodeURIComponent(assertion)}`, {
    redirect: 'manual',
  })

/** A friend who tapped "link": their LINE user and the link token on the button. */
async function linkStarted() {
  const user = await friend(k)
  const url = await tapLink(k, user.userId)
  return { user, linkToken: url.searchParams.get('linkToken') ?? '' }
}

/** The customer holding the shop customer id now. */
const holderOf = async (externalId: string) =>
  (
    await k.deps.db
      .selectFrom('identity')
      .select('customer_id')
      .where('kind', '=', 'online_customer')
      .where('value', '=', externalId)
      .executeTakeFirstOrThrow()
  ).customer_id

const noncesFor = (linkToken: string) =>
  k.deps.db
    .selectFrom('link_nonce')
    .selectAll()
    .where('link_token_hash', '=', sha256(linkToken))
    .execute()

/**
 * An error page (HTML, not cached) saying `said` in English and Japanese, and no nonce issued
 * for the link token.
 */
async function expectRefused(
  res: Response,
  status: number,
  said: { en: string; ja: string },
  linkToken: string,
) {
  expect(res.headers.get('cache-control')).toBe('no-store')
  await expectShopperError(res, status, said)
  expect(await noncesFor(linkToken)).toEqual([])
}

/** What the shopper reads when the shop's login could not be checked (a bad assertion). */
const loginUnchecked = {
  en: 'Your shop login could not be checked: open LINE and tap "Link account" again',
  ja: 'ショップのログインを確認できませんでした。LINEで「アカウント連携」をもう一度タップしてください',
}

describe("GET /link with the shop's own login", () => {
  it('sends the shopper to LINK_LOGIN_URL with the link token alone, naming no place to return to', async () => {
    const { user, linkToken } = await linkStarted()
    expect(k.line.requestsTo('POST', `/v2/bot/user/${user.userId}/linkToken`)).toHaveLength(1)

    const res = await fetch(`${k.baseUrl}/link?linkToken=${encodeURIComponent(linkToken)}`, {
      redirect: 'manual',
    })
    expect(res.status).toBe(302)
    const to = new URL(res.headers.get('location') ?? '')
    expect(`${to.origin}${to.pathname}`).toBe('https://shop.example/login')
    expect(to.searchParams.get('lang')).toBe('ja')
    // No returnTo: a shop login that redirects where the request says would hand a victim's
    // assertion to whoever sent them the login URL, who would link the victim's shop account to
    // their own LINE. The shop returns to the URL it was configured with (README: Account link).
    expect([...to.searchParams.keys()].sort()).toEqual(['lang', 'linkToken'])
    expect(to.searchParams.get('linkToken')).toBe(linkToken)
  })

  it('answers an unknown link token with an error page, not a redirect', async () => {
    const res = await fetch(`${k.baseUrl}/link?linkToken=never-issued`, { redirect: 'manual' })
    await expectShopperError(res, 404, {
      en: 'This link can\'t be used: open LINE and tap "Link account" again',
      ja: 'このリンクは使えません。LINEで「アカウント連携」をもう一度タップしてください',
    })
  })
})

describe('GET /link/callback', () => {
  it('links the shop account the assertion names: nonce, LINE dialog, then the accountLink event merges it', async () => {
    const externalId = newShopId()
    const online = await onlineCustomer(k, { externalId })
    const { user, linkToken } = await linkStarted()

    const dialog = dialogOf(await callback(assertionFor(linkToken, { externalId })), linkToken)
    const { nonce } = dialog
    expect(nonce.length).toBeGreaterThanOrEqual(22)
    const lu = await lineUser(user.userId)
    expect(await noncesFor(linkToken)).toMatchObject([
      {
        nonce_hash: sha256(nonce),
        line_user_id: lu.id,
        customer_id: online,
        identity_kind: 'online_customer',
        identity_value: externalId,
        status: 'issued',
      },
    ])

    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'now linked')
    const linked = (await lineUser(user.userId)).customer_id
    expect(await identitiesOf(linked)).toEqual(['line', 'member_card', 'online_customer'])
    expect(await holderOf(externalId)).toBe(linked)
    expect(await purchasesOf(linked)).toBe(1)
    const merged = await k.deps.db
      .selectFrom('customer')
      .select('merged_into_id')
      .where('id', '=', online)
      .executeTakeFirstOrThrow()
    expect(merged.merged_into_id).toBe(linked)
    const link = await k.deps.db
      .selectFrom('account_link')
      .select(['customer_id', 'identity_kind'])
      .where('line_user_id', '=', lu.id)
      .where('unlinked_at', 'is', null)
      .executeTakeFirstOrThrow()
    expect(link).toEqual({ customer_id: linked, identity_kind: 'online_customer' })
  })

  it('attaches a shop account id nobody holds yet to the LINE customer', async () => {
    const externalId = newShopId()
    const { user, linkToken } = await linkStarted()
    const dialog = dialogOf(await callback(assertionFor(linkToken, { externalId })), linkToken)
    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'now linked')
    const lu = await lineUser(user.userId)
    expect(await holderOf(externalId)).toBe(lu.customer_id)
  })

  it('refuses a second shop account for a LINE friend whose customer has one, whoever holds it', async () => {
    const held = newShopId()
    const online = await onlineCustomer(k, { externalId: held })
    for (const proven of [held, newShopId()]) {
      const { user, linkToken } = await linkStarted()
      const friendId = (await lineUser(user.userId)).customer_id
      const own = newShopId()
      await shopAccountByOrder(k, friendId, own)
      const dialog = dialogOf(
        await callback(assertionFor(linkToken, { externalId: proven })),
        linkToken,
      )
      await k.line.users.accountLink(user.userId, dialog)
      await waitForText(user.userId, 'another online shop account')
      expect((await lineUser(user.userId)).customer_id).toBe(friendId)
      expect(await holderOf(own)).toBe(friendId)
      expect(await identitiesOf(friendId)).toEqual([
        'email',
        'line',
        'member_card',
        'online_customer',
      ])
    }
    expect(await holderOf(held)).toBe(online)
    const merged = await k.deps.db
      .selectFrom('customer')
      .select('merged_into_id')
      .where('id', '=', online)
      .executeTakeFirstOrThrow()
    expect(merged.merged_into_id).toBeNull()
  })

  it('refuses an assertion with a bad signature, or whose payload was changed, and writes nothing', async () => {
    const { linkToken } = await linkStarted()
    const forged = assertionFor(linkToken, { externalId: newShopId() }, 300, 'x'.repeat(40))
    const before = logs.lines.length
    await expectRefused(await callback(forged), 400, loginUnchecked, linkToken)
    // The operator learns why every shopper is refused: the secrets do not match.
    const warned = logs.lines.slice(before).filter((l) => l.includes('LINK_ASSERTION_SECRET'))
    expect(warned).toHaveLength(1)
    expect(JSON.parse(warned[0] ?? '{}')).toMatchObject({ level: 40 })
    expect(warned[0]).not.toContain(forged.split('.')[0])

    const [, signature] = assertionFor(linkToken, { externalId: newShopId() }).split('.')
    const otherBody = Buffer.from(
      JSON.stringify({ externalId: newShopId(), linkToken, exp: Date.now() / 1000 + 300 }),
    ).toString('base64url')
    await expectRefused(await callback(`${otherBody}.${signature}`), 400, loginUnchecked, linkToken)
  })

  it('refuses, in words the shopper can read, an assertion the shop login got wrong or none at all', async () => {
    const { linkToken } = await linkStarted()
    // Signed right, but without the link token or an account: zod's wording stays off the page.
    const noToken = signLinkAssertion(SECRET, {
      externalId: newShopId(),
      exp: Math.floor(Date.now() / 1000) + 300,
    })
    const before = logs.lines.length
    await expectRefused(await callback(noToken), 400, loginUnchecked, linkToken)
    // Why is for the operator (the shop's developer), in the log.
    const why = logs.lines.slice(before).find((l) => l.includes('assertion refused'))
    expect(why).toContain('linkToken')
    const noAccount = assertionFor(linkToken, {})
    await expectRefused(await callback(noAccount), 400, loginUnchecked, linkToken)
    const none = await fetch(`${k.baseUrl}/link/callback`, { redirect: 'manual' })
    await expectRefused(none, 400, loginUnchecked, linkToken)
  })

  it('refuses an expired assertion and writes nothing', async () => {
    const { linkToken } = await linkStarted()
    const expired = assertionFor(linkToken, { externalId: newShopId() }, -1)
    await expectRefused(
      await callback(expired),
      410,
      {
        en: 'Your shop login has expired: open LINE and tap "Link account" again',
        ja: 'ショップのログインの有効期限が切れています',
      },
      linkToken,
    )
  })

  it('refuses an assertion used once already, and writes nothing more', async () => {
    const externalId = newShopId()
    const { user, linkToken } = await linkStarted()
    const assertion = assertionFor(linkToken, { externalId })
    const dialog = dialogOf(await callback(assertion), linkToken)
    const { nonce } = dialog

    // The callback URL again (browser history, a shared link, a proxy log): no second nonce.
    const again = await callback(assertion)
    await expectShopperError(again, 410, {
      en: 'This shop login was already used: open LINE and tap "Link account" again',
      ja: 'このショップのログインはすでに使用されています',
    })
    expect((await noncesFor(linkToken)).map((n) => n.nonce_hash)).toEqual([sha256(nonce)])

    // The first one still links.
    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'now linked')
    // Its link token is now of a linked LINE account: refused as such.
    await expectShopperError(await callback(assertion), 409, {
      en: 'your LINE account is already linked to an online account',
      ja: 'すでにオンラインアカウントと連携済み',
    })
    expect(await noncesFor(linkToken)).toHaveLength(1)
  })

  it("keeps the shop's name for the linked customer, not the LINE nickname it was given", async () => {
    const externalId = newShopId()
    await importCustomerRow(k.deps.db, k.deps.env, { external_id: externalId, name: '山田 太郎' })
    const user = await friendNamedByLine('たろちゃん')
    await linkShopAccount(user.userId, externalId)
    expect(await nameOf((await lineUser(user.userId)).customer_id)).toBe('山田 太郎')
  })

  it("keeps the shop's name over a LINE nickname the friend has changed since", async () => {
    const externalId = newShopId()
    await importCustomerRow(k.deps.db, k.deps.env, { external_id: externalId, name: '佐藤 次郎' })
    const user = await friendNamedByLine('じろう')
    // Blocked and back, under a new nickname: the profile is fetched again, and the customer
    // keeps the name it was given first.
    await k.line.users.block(user.userId)
    user.displayName = 'ジロー🍣'
    await k.line.users.follow(user.userId)
    await eventually(async () =>
      expect((await lineUser(user.userId)).display_name).toBe('ジロー🍣'),
    )
    expect(await nameOf((await lineUser(user.userId)).customer_id)).toBe('じろう')
    await linkShopAccount(user.userId, externalId)
    expect(await nameOf((await lineUser(user.userId)).customer_id)).toBe('佐藤 次郎')
  })
})

/** A new friend whose customer was named by their LINE profile (`nickname`). */
async function friendNamedByLine(nickname: string) {
  const user = k.line.users.create({ displayName: nickname })
  await k.line.users.follow(user.userId)
  await eventually(async () =>
    expect(await nameOf((await lineUser(user.userId)).customer_id)).toBe(nickname),
  )
  return user
}

/** The friend proves shop account `externalId` through the shop's login, and LINE links it. */
async function linkShopAccount(userId: string, externalId: string) {
  const url = await tapLink(k, userId)
  const linkToken = url.searchParams.get('linkToken') ?? ''
  const dialog = dialogOf(await callback(assertionFor(linkToken, { externalId })), linkToken)
  await k.line.users.accountLink(userId, dialog)
  await waitForText(userId, 'now linked')
}

const nameOf = async (customerId: string) =>
  (
    await k.deps.db
      .selectFrom('customer')
      .select('display_name')
      .where('id', '=', customerId)
      .executeTakeFirstOrThrow()
  ).display_name
