import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.ts'
import { createMailer } from '../../src/email/mailer.ts'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { closeDeps, createDeps } from '../../src/main/deps.ts'
import { createInbox } from '../../src/webhook/inbox.ts'
import { testEnv } from '../support/harness.ts'
import {
  codeMailedTo,
  dialogOf,
  expectShopperError,
  hidden,
  kizunaWithSmtp,
  newEmail,
  newFriendLinkToken,
  post,
} from './support.ts'

// Shoppers are Japanese retail customers: what the account-link pages say when something goes
// wrong is in Japanese and English, never a schema's wording (expectShopperError).
const started = kizunaWithSmtp()

describe('the account-link pages when something is wrong', () => {
  it('say that a link has expired', async () => {
    const { k } = started
    const linkToken = await newFriendLinkToken(started.k)
    await k.deps.db
      .updateTable('link_token')
      .set({ expires_at: new Date(Date.now() - 1_000) })
      .where('token_hash', '=', sha256(linkToken))
      .execute()
    const res = await fetch(`${k.baseUrl}/link?linkToken=${encodeURIComponent(linkToken)}`)
    await expectShopperError(res, 410, {
      en: 'This link has expired: open LINE and tap "Link account" again',
      ja: 'このリンクは有効期限が切れています。LINEで「アカウント連携」をもう一度タップしてください',
    })
  })

  it('say what is wrong with a code: unknown, expired or already used', async () => {
    const { k, smtp } = started
    const linkToken = await newFriendLinkToken(started.k)
    const email = newEmail()
    const before = smtp.mails.length
    const sent = await (await post(`${k.baseUrl}/link/email`, { linkToken, email })).text()
    // The code page itself says where the code went, in both languages.
    expect(sent).toContain('We sent a 6-digit code to')
    expect(sent).toContain('6桁の確認コードを送信しました')
    const codeId = hidden(sent, 'codeId')
    const code = await codeMailedTo(smtp, email, before)
    const enter = (form: Record<string, string>) =>
      post(`${k.baseUrl}/link/code`, { linkToken, code, ...form })
    const unknownCode = {
      en: 'Unknown code: request a new code',
      ja: '確認コードが見つかりません。新しいコードを送信してください',
    }
    await expectShopperError(await enter({ codeId: randomUUID() }), 404, unknownCode)
    await expectShopperError(await enter({ codeId: 'not-a-uuid' }), 400, unknownCode)
    await expectShopperError(await enter({}), 400, unknownCode)

    const expiresIn = (ms: number) =>
      k.deps.db
        .updateTable('link_code')
        .set({ expires_at: new Date(Date.now() + ms) })
        .where('id', '=', codeId)
        .execute()
    await expiresIn(-1_000)
    await expectShopperError(await enter({ codeId }), 410, {
      en: 'This code has expired: request a new code',
      ja: '確認コードの有効期限（10分）が切れています',
    })
    await expiresIn(60_000)
    dialogOf(await enter({ codeId }), linkToken)
    await expectShopperError(await enter({ codeId }), 410, {
      en: 'This code was already used: request a new code',
      ja: 'この確認コードはすでに使用されています',
    })
  })

  it("say that the shop login's return page is not used when the shop login is not set up", async () => {
    const res = await fetch(`${started.k.baseUrl}/link/callback?assertion=x.y`)
    await expectShopperError(res, 404, {
      en: 'This page is not used here: open LINE and tap "Link account" again',
      ja: 'このページはご利用いただけません',
    })
  })

  it('say a form is too large (413)', async () => {
    const linkToken = await newFriendLinkToken(started.k)
    const res = await post(`${started.k.baseUrl}/link/email`, {
      linkToken,
      email: 'x'.repeat(9_000),
    })
    await expectShopperError(res, 413, {
      en: 'The form is too large',
      ja: '送信された内容が大きすぎます',
    })
  })

  it('show a page, not JSON, when Postgres cannot be reached (503)', async () => {
    const env = testEnv({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere',
      SMTP_URL: started.smtp.url,
      PUBLIC_BASE_URL: 'https://shop.example',
    })
    const deps = await createDeps(env, { queuePrefix: `test-${randomUUID()}` })
    const mailer = createMailer(deps.env, deps.db, { sandbox: false })
    try {
      const app = createApp(deps, { inbox: createInbox(deps), mailer })
      const res = await app.request('/link?linkToken=any')
      await expectShopperError(res, 503, {
        en: 'Something went wrong on our side: try again in a moment',
        ja: 'ただいま処理できませんでした。しばらくしてからもう一度お試しください',
      })
      expect(res.headers.get('cache-control')).toBe('no-store')
    } finally {
      mailer.close()
      await closeDeps(deps)
    }
  })
})
