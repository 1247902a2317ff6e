import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { SMTPServer } from 'smtp-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMailer } from '../../src/email/mailer.ts'
import { sandboxMailRoutes } from '../../src/email/sandbox-mailbox.ts'
import { linkRoutes } from '../../src/linking/link.routes.ts'
import { signLinkAssertion, verifyLinkAssertion } from '../../src/linking/link-assertion.ts'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import {
  codeMailedTo,
  dialogOf,
  expectShopperError,
  friend,
  hidden,
  newFriendLinkToken,
  noncesIssuedFor,
  post,
  type Smtp,
  startSmtp,
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

const newEmail = () => `page-${randomUUID().slice(0, 8)}@example.jp`

/** What the pages say, in English and Japanese, of a link token they cannot use. */
const unusableLink = {
  en: 'This link can\'t be used: open LINE and tap "Link account" again',
  ja: 'このリンクは使えません。LINEで「アカウント連携」をもう一度タップしてください',
}
const invalidEmail = {
  en: 'Not a valid email address',
  ja: 'メールアドレスの形式が正しくありません',
}

describe('the account-link page', () => {
  it('locks a code after 5 wrong tries, even for the right code', async () => {
    const linkToken = await newFriendLinkToken(k)
    const email = newEmail()
    const before = smtp.mails.length
    const page = await post(`${k.baseUrl}/link/email`, { linkToken, email })
    const codeId = hidden(await page.text(), 'codeId')
    const code = await codeMailedTo(smtp, email, before)
    const wrong = code === '000000' ? '111111' : '000000'
    for (let i = 1; i <= 4; i++) {
      const res = await post(`${k.baseUrl}/link/code`, { linkToken, codeId, code: wrong })
      const left = 5 - i
      await expectShopperError(res, 400, {
        en: `Wrong code: ${left} ${left === 1 ? 'try' : 'tries'} left`,
        ja: `確認コードが正しくありません（あと${left}回入力できます）`,
      })
    }
    const fifth = await post(`${k.baseUrl}/link/code`, { linkToken, codeId, code: wrong })
    expect(fifth.status).toBe(429)
    const right = await post(`${k.baseUrl}/link/code`, { linkToken, codeId, code })
    await expectShopperError(right, 429, {
      en: 'Too many wrong codes: request a new code',
      ja: '確認コードの誤りが多すぎるため、このコードは使えません',
    })
    expect(await noncesIssuedFor(k, linkToken)).toEqual([])
  })

  it('takes a code typed in full width with the Japanese IME on (１２３　４５６), on the page and the server', async () => {
    const linkToken = await newFriendLinkToken(k)
    const email = newEmail()
    const before = smtp.mails.length
    const page = await (await post(`${k.baseUrl}/link/email`, { linkToken, email })).text()
    const codeId = hidden(page, 'codeId')
    const code = await codeMailedTo(smtp, email, before)
    const fullWidth = (digits: string) =>
      [...digits].map((d) => String.fromCharCode(0xff10 + Number(d))).join('')
    // With an ideographic space, as the IME types one: seven characters, the field's maxlength.
    const typed = `${fullWidth(code.slice(0, 3))}\u3000${fullWidth(code.slice(3))}`
    // The browser checks the field's pattern before posting (compiled with the v flag).
    const pattern = /pattern="([^"]*)"/.exec(page)?.[1] ?? ''
    expect(new RegExp(`^(?:${pattern})$`, 'v').test(typed)).toBe(true)
    const wrong = fullWidth(code === '000000' ? '111111' : '000000')
    const miss = await post(`${k.baseUrl}/link/code`, { linkToken, codeId, code: wrong })
    // Read as a code, not as "enter the 6 digits".
    await expectShopperError(miss, 400, { en: 'Wrong code: 4 tries left', ja: 'あと4回' })
    dialogOf(await post(`${k.baseUrl}/link/code`, { linkToken, codeId, code: typed }), linkToken)
  })

  it('escapes what the shopper typed and says what is wrong with it', async () => {
    const linkToken = await newFriendLinkToken(k)
    const res = await post(`${k.baseUrl}/link/email`, {
      linkToken,
      email: '"><script>alert(1)</script>',
    })
    const body = await expectShopperError(res, 400, invalidEmail)
    expect(body).not.toContain('<script>alert(1)</script>')
    // Not an email address: not shown again at all (link-page-echo.test.ts).
    expect(body).not.toContain('script&gt;')
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'")
    const codes = await k.deps.db
      .selectFrom('link_code')
      .select('id')
      .where('link_token_hash', '=', sha256(linkToken))
      .execute()
    expect(codes).toHaveLength(0)

    const badCode = await post(`${k.baseUrl}/link/code`, {
      linkToken,
      codeId: randomUUID(),
      code: '12ab<b>',
      email: '<b>x</b>',
    })
    const text = await expectShopperError(badCode, 400, {
      en: 'Enter the 6 digits from the email',
      ja: 'メールに記載された6桁の数字を入力してください',
    })
    expect(text).not.toContain('<b>x</b>')
  })

  it('rejects unknown, missing and malformed link tokens with a page the shopper can read', async () => {
    const unknown = await fetch(`${k.baseUrl}/link?linkToken=nope`)
    await expectShopperError(unknown, 404, unusableLink)
    // The link opened without its token (cut off when copied): no zod text, no field name.
    const missing = await fetch(`${k.baseUrl}/link`)
    const page = await expectShopperError(missing, 400, unusableLink)
    expect(page).not.toContain('linkToken:')
    expect(page).not.toContain('name="email"')
    const tooLong = await fetch(`${k.baseUrl}/link?linkToken=${'x'.repeat(201)}`)
    await expectShopperError(tooLong, 400, unusableLink)
    // A form posted without one: the link's own page, no form to fill in again.
    const posted = await post(`${k.baseUrl}/link/email`, { email: newEmail() })
    expect(await expectShopperError(posted, 400, unusableLink)).not.toContain('name="email"')
    const code = await post(`${k.baseUrl}/link/code`, { codeId: randomUUID(), code: '123456' })
    expect(await expectShopperError(code, 400, unusableLink)).not.toContain('name="code"')
  })

  it('sends at most 3 codes per email address in 10 minutes', async () => {
    const email = newEmail()
    for (let i = 0; i < 3; i++) {
      const res = await post(`${k.baseUrl}/link/email`, {
        linkToken: await newFriendLinkToken(k),
        email,
      })
      expect(res.status).toBe(200)
    }
    const fourth = await post(`${k.baseUrl}/link/email`, {
      linkToken: await newFriendLinkToken(k),
      email,
    })
    await expectShopperError(fourth, 429, {
      en: 'Too many codes were sent to this email address: wait 10 minutes',
      ja: 'このメールアドレスへのコード送信が多すぎます。10分ほど待ってから',
    })
  })
})

describe('the daily cap on wrong codes', () => {
  async function sendCode(linkToken: string, email: string) {
    const before = smtp.mails.length
    const page = await post(`${k.baseUrl}/link/email`, { linkToken, email })
    expect(page.status).toBe(200)
    const codeId = hidden(await page.text(), 'codeId')
    const code = await codeMailedTo(smtp, email, before)
    return { codeId, code, wrong: code === '000000' ? '111111' : '000000' }
  }
  const enter = (linkToken: string, codeId: string, code: string) =>
    post(`${k.baseUrl}/link/code`, { linkToken, codeId, code })
  const accountLocked = {
    en: 'Too many wrong codes: linking from this LINE account is locked for up to 24 hours',
    ja: 'このLINEアカウントからの連携を最大24時間停止しています',
  }
  const addressLocked = {
    en: 'Too many wrong codes for this email address: linking it is locked for up to 24 hours',
    ja: 'このメールアドレスの連携を最大24時間停止しています',
  }

  it("an attacker's wrong codes lock their LINE account, not the victim's address", async () => {
    const victim = newEmail()
    const attacker = await newFriendLinkToken(k)
    // 5 + 5 wrong tries on two codes sent to the victim's address.
    for (let n = 0; n < 2; n++) {
      const page = await post(`${k.baseUrl}/link/email`, { linkToken: attacker, email: victim })
      const codeId = hidden(await page.text(), 'codeId')
      for (let i = 0; i < 5; i++) await enter(attacker, codeId, '000000')
    }
    const capped = await post(`${k.baseUrl}/link/email`, { linkToken: attacker, email: victim })
    await expectShopperError(capped, 429, accountLocked)
    // The victim, on their own LINE account, asks for a code and links their address.
    const own = await newFriendLinkToken(k)
    const sent = await sendCode(own, victim)
    expect((await enter(own, sent.codeId, sent.code)).status).toBe(302)
  })

  it('locks an address for up to 24 hours after 50 wrong codes from all LINE accounts', async () => {
    const email = newEmail()
    // 45 wrong codes from other LINE accounts an hour ago, written directly: the 3 codes per
    // 10 minutes would make sending them take hours.
    await k.deps.db
      .insertInto('link_code')
      .values(
        Array.from({ length: 9 }, () => ({
          link_token_hash: sha256(randomUUID()),
          email,
          code_hash: 'x',
          attempts: 5,
          created_at: new Date(Date.now() - 3_600_000),
          expires_at: new Date(Date.now() - 3_000_000),
        })),
      )
      .execute()
    const linkToken = await newFriendLinkToken(k)
    const sent = await sendCode(linkToken, email)
    for (let i = 0; i < 3; i++) await enter(linkToken, sent.codeId, sent.wrong)
    const forty9th = await enter(linkToken, sent.codeId, sent.wrong)
    await expectShopperError(forty9th, 400, { en: 'Wrong code: 1 try left', ja: 'あと1回' })
    const fiftieth = await enter(linkToken, sent.codeId, sent.wrong)
    await expectShopperError(fiftieth, 429, addressLocked)
    // An account that failed on the address may not ask again; one that did not may ask (its
    // code is then refused when entered: the price of bounding guesses from many accounts).
    const again = await post(`${k.baseUrl}/link/email`, { linkToken, email })
    await expectShopperError(again, 429, addressLocked)
    const other = await newFriendLinkToken(k)
    const otherCode = await sendCode(other, email)
    const refused = await enter(other, otherCode.codeId, otherCode.code)
    await expectShopperError(refused, 429, addressLocked)

    // A day later (the codes' times moved back rather than waited for), the address is free.
    await k.deps.db
      .updateTable('link_code')
      .set({ created_at: new Date(Date.now() - 24 * 60 * 60_000 - 60_000) })
      .where('email', '=', email)
      .execute()
    const laterToken = await newFriendLinkToken(k)
    const later = await sendCode(laterToken, email)
    expect((await enter(laterToken, later.codeId, later.code)).status).toBe(302)
  })

  it('locks a LINE account after 10 wrong codes, whatever the addresses', async () => {
    const linkToken = await newFriendLinkToken(k)
    for (const tries of [4, 4, 1]) {
      const sent = await sendCode(linkToken, newEmail())
      for (let i = 0; i < tries; i++) await enter(linkToken, sent.codeId, sent.wrong)
      if (tries === 1) {
        const tenth = await enter(linkToken, sent.codeId, sent.wrong)
        await expectShopperError(tenth, 429, accountLocked)
      }
    }
    const email = newEmail()
    const refused = await post(`${k.baseUrl}/link/email`, { linkToken, email })
    await expectShopperError(refused, 429, accountLocked)
    // The address itself is not locked: another LINE account links it.
    const other = await newFriendLinkToken(k)
    const sent = await sendCode(other, email)
    expect((await enter(other, sent.codeId, sent.code)).status).toBe(302)
  })
})

describe('when LINE or email is unavailable', () => {
  it('tells the shopper to try again when LINE refuses a link token', async () => {
    const user = await friend(k)
    k.line.failNext({ method: 'POST', path: /linkToken$/, status: 400, count: 1 })
    await k.line.users.postback(user.userId, 'action=link')
    await eventually(() =>
      expect(JSON.stringify(k.line.inbox(user.userId))).toContain('not available right now'),
    )
  })

  it('asks LINE again for a link token it answered 500, and sends the link once', async () => {
    const user = await friend(k)
    k.line.failNext({ method: 'POST', path: /linkToken$/, status: 500, count: 1 })
    await k.line.users.postback(user.userId, 'action=link')
    const invites = () => k.line.inbox(user.userId).filter((e) => e.message.type === 'template')
    await eventually(() => expect(invites()).toHaveLength(1))
    expect(k.line.requestsTo('POST', `/v2/bot/user/${user.userId}/linkToken`)).toHaveLength(2)
    expect(JSON.stringify(k.line.inbox(user.userId))).not.toContain('not available right now')
    expect(k.line.inbox(user.userId)).toHaveLength(3)
  })

  it('keeps the address out of the logs when the relay refuses it', async () => {
    // A Postfix-style refusal, which quotes the recipient in its reply.
    const relay = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onRcptTo(address, _session, callback) {
        const reply = `5.1.1 <${address.address}>: Recipient address rejected: User unknown`
        callback(Object.assign(new Error(reply), { responseCode: 550 }))
      },
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    const port = (relay.server.address() as AddressInfo).port
    const mailer = createMailer(
      { SMTP_URL: `smtp://127.0.0.1:${port}`, MAIL_FROM: 'Shop <shop@example.jp>' },
      k.deps.db,
      { sandbox: false },
    )
    const logged: string[] = []
    const log = createLogger(
      'debug',
      new Writable({
        write(chunk, _encoding, done) {
          logged.push(String(chunk))
          done()
        },
      }),
    )
    try {
      const email = newEmail()
      const res = await linkRoutes({ ...k.deps, log }, mailer).request('/link/email', {
        method: 'POST',
        body: new URLSearchParams({ linkToken: await newFriendLinkToken(k), email }),
      })
      await expectShopperError(res, 503, {
        en: 'The email could not be sent: try again in a moment',
        ja: 'メールを送信できませんでした。しばらくしてからもう一度お試しください',
      })
      expect(logged.join('')).not.toContain(email)
      expect(logged.join('')).toContain('"responseCode":550')
    } finally {
      mailer.close()
      await new Promise<void>((resolve) => relay.close(() => resolve()))
    }
  })

  it('keeps sandbox mail in the sandbox mailbox, shown escaped', async () => {
    const mailer = createMailer({ MAIL_FROM: 'Shop <shop@example.jp>' }, k.deps.db, {
      sandbox: true,
    })
    expect(mailer.kind).toBe('sandbox')
    const subject = `Hello <b>${randomUUID()}</b>`
    await mailer.send({ to: 'a@example.jp', subject, text: 'code 123456' })
    const res = await sandboxMailRoutes(k.deps.db).request('/')
    const page = await res.text()
    expect(page).toContain(subject.replace('<b>', '&lt;b&gt;').replace('</b>', '&lt;/b&gt;'))
    const off = createMailer({ MAIL_FROM: 'x <x@example.jp>' }, k.deps.db, { sandbox: false })
    await expect(off.send({ to: 'a@example.jp', subject: 's', text: 't' })).rejects.toThrow(
      'SMTP_URL',
    )
  })
})

describe('shop login assertions', () => {
  const secret = 'x'.repeat(32)
  const now = new Date('2026-11-23T10:00:00Z')
  const exp = now.getTime() / 1000 + 60

  it('accepts a signed, unexpired assertion', () => {
    const a = signLinkAssertion(secret, { externalId: 'C-1', linkToken: 't', exp })
    expect(verifyLinkAssertion(secret, a, now)).toEqual({
      linkToken: 't',
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      identity: { kind: 'online_customer', value: 'C-1' },
    })
  })

  it('refuses a bad signature, an expired or an incomplete assertion', () => {
    const a = signLinkAssertion(secret, { email: 'a@example.jp', linkToken: 't', exp })
    expect(() => verifyLinkAssertion('y'.repeat(32), a, now)).toThrow('bad signature')
    expect(() => verifyLinkAssertion(secret, a, new Date(exp * 1000))).toThrow('expired')
    const none = signLinkAssertion(secret, { linkToken: 't', exp })
    expect(() => verifyLinkAssertion(secret, none, now)).toThrow('externalId or email')
  })

  it('refuses, naming the field, an account id holding a NUL character (it would be looked up in Postgres)', () => {
    const nul = signLinkAssertion(secret, { externalId: 'C-1\u0000', linkToken: 't', exp })
    expect(() => verifyLinkAssertion(secret, nul, now)).toThrow(
      'assertion: externalId: contains a NUL character',
    )
  })
})
