import { describe, expect, it } from 'vitest'
import {
  expectShopperError,
  hidden,
  kizunaWithSmtp,
  newEmail,
  newFriendLinkToken,
  post,
} from './support.ts'

// A page from another site can post its own form to /link/email and /link/code (with a link
// token of the attacker's): what it posts must not show as text on the shop's page.
const started = kizunaWithSmtp()
const planted = 'Your account is suspended: call 0120-000-000'

describe('the account-link pages on an error', () => {
  it("show the code's own address on the code page, never that of another link's code", async () => {
    const codeSent = async (linkToken: string, email: string) => {
      const sent = await post(`${started.k.baseUrl}/link/email`, { linkToken, email })
      expect(sent.status).toBe(200)
      return hidden(await sent.text(), 'codeId')
    }
    const someonesEmail = newEmail()
    const someonesCode = await codeSent(await newFriendLinkToken(started.k), someonesEmail)
    const linkToken = await newFriendLinkToken(started.k)
    const email = newEmail()
    const codeId = await codeSent(linkToken, email)

    const wrong = await post(`${started.k.baseUrl}/link/code`, { linkToken, codeId, code: 'abc' })
    const page = await expectShopperError(wrong, 400, {
      en: 'Enter the 6 digits from the email',
      ja: 'メールに記載された6桁の数字を入力してください',
    })
    expect(page).toContain(email)

    // The form posted with one's own link token and the id of someone else's code: their code
    // is unknown to this link, and their address is not shown (nor a button mailing it).
    const other = await post(`${started.k.baseUrl}/link/code`, {
      linkToken,
      codeId: someonesCode,
      code: '123456',
    })
    const otherPage = await expectShopperError(other, 404, {
      en: 'Unknown code: request a new code',
      ja: '確認コードが見つかりません',
    })
    expect(otherPage).not.toContain(someonesEmail)
    expect(otherPage).not.toContain('name="email"')
  })

  it('does not put posted text back on the code page', async () => {
    // The code page returns the code's id to its form: posted text instead of an id is not.
    const linkToken = await newFriendLinkToken(started.k)
    const res = await post(`${started.k.baseUrl}/link/code`, {
      linkToken,
      codeId: planted,
      code: '123456',
    })
    const page = await expectShopperError(res, 400, {
      en: 'Unknown code: request a new code',
      ja: '確認コードが見つかりません',
    })
    expect(page).not.toContain('call 0120')
  })

  it('does not show posted text that is not an email address on the email page', async () => {
    const linkToken = await newFriendLinkToken(started.k)
    const res = await post(`${started.k.baseUrl}/link/email`, { linkToken, email: planted })
    const page = await expectShopperError(res, 400, {
      en: 'Not a valid email address',
      ja: 'メールアドレスの形式が正しくありません',
    })
    expect(page).not.toContain('call 0120')
  })
})
