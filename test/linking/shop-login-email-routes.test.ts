import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  expectShopperError,
  friend,
  noncesIssuedFor,
  post,
  type Smtp,
  startSmtp,
  tapLinkToken,
} from './support.ts'

// The shop's own login (LINK_LOGIN_URL) is the proof the operator chose, and SMTP_URL is set
// too (for message email): the email-code routes must not offer a way around the shop's password.
const SECRET = 'shop-login-assertion-secret-0123456789'
let k: TestKizuna
let smtp: Smtp
beforeAll(async () => {
  smtp = await startSmtp()
  k = await startTestKizuna({
    SMTP_URL: smtp.url,
    LINK_LOGIN_URL: 'https://shop.example/login',
    LINK_ASSERTION_SECRET: SECRET,
    PUBLIC_BASE_URL: 'https://kizuna.example',
  })
})
afterAll(async () => {
  await k?.stopAll()
  await smtp?.close()
})

const rowsFor = async (linkToken: string) => ({
  codes: await k.deps.db
    .selectFrom('link_code')
    .select('id')
    .where('link_token_hash', '=', sha256(linkToken))
    .execute(),
  nonces: await noncesIssuedFor(k, linkToken),
})

async function expectNotHere(res: Response) {
  expect(res.headers.get('cache-control')).toBe('no-store')
  const page = await expectShopperError(res, 404, {
    en: 'This page is not used here: open LINE and tap "Link account" again',
    ja: 'このページはご利用いただけません。LINEで「アカウント連携」をもう一度タップしてください',
  })
  expect(page).not.toContain('name="email"')
}

describe("email-code routes with the shop's own login", () => {
  it('answer 404 to a link token posted straight to /link/email and /link/code, writing and mailing nothing', async () => {
    const user = await friend(k)
    const linkToken = await tapLinkToken(k, user.userId)
    const page = await fetch(`${k.baseUrl}/link?linkToken=${encodeURIComponent(linkToken)}`, {
      redirect: 'manual',
    })
    expect(page.status).toBe(302)
    const mails = smtp.mails.length

    const email = `bypass.${randomUUID().slice(0, 8)}@example.jp`
    await expectNotHere(await post(`${k.baseUrl}/link/email`, { linkToken, email }))
    const code = { linkToken, codeId: randomUUID(), code: '123456' }
    await expectNotHere(await post(`${k.baseUrl}/link/code`, code))
    expect(smtp.mails.length).toBe(mails)
    expect(await rowsFor(linkToken)).toEqual({ codes: [], nonces: [] })
  })
})
