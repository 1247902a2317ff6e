import { describe, expect, it } from 'vitest'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { logSink } from '../support/log-sink.ts'
import {
  codeMailedTo,
  dialogOf,
  expectShopperError,
  hidden,
  kizunaWithSmtp,
  newEmail,
  newFriendLinkToken,
  noncesIssuedFor,
  post,
} from './support.ts'

// The code's email when the relay does not answer as it should: a relay that took the whole
// message and never answered may have delivered it (the shopper must be able to enter it), and
// a code that was not sent still counts toward the limits on codes mailed.
const logs = logSink()
const started = kizunaWithSmtp({}, { log: createLogger('info', logs.sink) })

const sendCode = (linkToken: string, email: string) =>
  post(`${started.k.baseUrl}/link/email`, { linkToken, email })
const notSent = {
  en: 'The email could not be sent: try again in a moment',
  ja: 'メールを送信できませんでした。しばらくしてからもう一度お試しください',
}

describe("the code's email, when the relay fails", () => {
  it('asks for the code when the relay took the whole email and dropped the connection unanswered, and the code links', async () => {
    const { k, smtp } = started
    const linkToken = await newFriendLinkToken(started.k)
    const email = newEmail()
    const before = smtp.mails.length
    smtp.dropNext()
    const res = await sendCode(linkToken, email)
    // The relay has the email: the shopper gets the page to enter its code, not "not sent".
    expect(res.status).toBe(200)
    const page = await res.text()
    expect(page).toContain('name="code"')
    expect(page).toContain(email)
    expect(smtp.mailsTo(email)).toHaveLength(1)
    // Dropped indeed (an answered email gives the same page): the send's outcome was unknown.
    expect(smtp.dropped).toBe(1)
    expect(logs.entries().filter((l) => /outcome unknown/.test(String(l.msg)))).toEqual([
      expect.objectContaining({
        level: 40,
        msg: 'link code email outcome unknown: the relay got it all and did not answer',
      }),
    ])
    const code = await codeMailedTo(smtp, email, before)
    const codeId = hidden(page, 'codeId')
    dialogOf(await post(`${k.baseUrl}/link/code`, { linkToken, codeId, code }), linkToken)
  })

  it('counts codes whose email the relay refused toward the limit per address, and takes none of them', async () => {
    const { k, smtp } = started
    const email = newEmail()
    const tokens: string[] = []
    smtp.refuseNext(451, 'Try again later', 3)
    for (let i = 0; i < 3; i++) {
      tokens.push(await newFriendLinkToken(started.k))
      const res = await sendCode(tokens[i] ?? '', email)
      await expectShopperError(res, 503, notSent)
    }
    // Refused three times: the address had its 3 codes for 10 minutes, sent or not.
    const fourth = await sendCode(await newFriendLinkToken(started.k), email)
    await expectShopperError(fourth, 429, {
      en: 'Too many codes were sent to this email address',
      ja: 'このメールアドレスへのコード送信が多すぎます',
    })
    expect(smtp.mailsTo(email)).toEqual([])

    // A code that was not sent is never taken, whatever is entered for it (its id is in no page).
    const codes = await k.deps.db
      .selectFrom('link_code')
      .select(['id', 'link_token_hash'])
      .where('email', '=', email)
      .execute()
    expect(codes).toHaveLength(3)
    for (const code of codes) {
      const linkToken = tokens.find((t) => sha256(t) === code.link_token_hash) ?? ''
      const res = await post(`${k.baseUrl}/link/code`, {
        linkToken,
        codeId: code.id,
        code: '123456',
      })
      // Withdrawn (expired), so no attempt is spent on it: no wrong code counts against anyone.
      await expectShopperError(res, 410, {
        en: 'This code has expired',
        ja: '確認コードの有効期限（10分）が切れています',
      })
    }
    expect(await noncesIssuedFor(k, ...tokens)).toEqual([])
  })
})
