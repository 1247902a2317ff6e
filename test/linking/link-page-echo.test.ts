import { describe, expect, it } from 'vitest'
import {
  expectShopperError,
  friend,
  hidden,
  kizunaWithSmtp,
  newEmail,
  post,
  tapLinkToken,
} from './support.ts'

// A page from another site can post its own form to /link/email and /link/code (with a link
// token of the attacker's): what it posts must not show as text on the shop's page.
const started = kizunaWithSmtp()
const planted = 'Your account is suspended: call 0120-000-000'

const freshLinkToken = async () => tapLinkToken(started.k, (await friend(started.k)).userId)

describe('the account-link pages on an error', () => {
  it("show the code's own address on the code page, never the posted one", async () => {
    const linkToken = await freshLinkToken()
    const email = newEmail()
    const sent = await post(`${started.k.baseUrl}/link/email`, { linkToken, email })
    const codeId = hidden(await sent.text(), 'codeId')

    const wrong = await post(`${started.k.baseUrl}/link/code`, {
      linkToken,
      codeId,
      code: 'abc',
      email: planted,
    })
    const page = await expectShopperError(wrong, 400, {
      en: 'Enter the 6 digits from the email',
      ja: 'メールに記載された6桁の数字を入力してください',
    })
    expect(page).not.toContain('call 0120')
    expect(page).toContain(email)

    const unknown = await post(`${started.k.baseUrl}/link/code`, {
      linkToken,
      codeId: '00000000-0000-4000-8000-000000000000',
      code: '123456',
      email: planted,
    })
    const unknownPage = await expectShopperError(unknown, 404, {
      en: 'Unknown code: request a new code',
      ja: '確認コードが見つかりません',
    })
    expect(unknownPage).not.toContain('call 0120')
  })

  it('does not show posted text that is not an email address on the email page', async () => {
    const linkToken = await freshLinkToken()
    const res = await post(`${started.k.baseUrl}/link/email`, { linkToken, email: planted })
    const page = await expectShopperError(res, 400, {
      en: 'Not a valid email address',
      ja: 'メールアドレスの形式が正しくありません',
    })
    expect(page).not.toContain('call 0120')
  })
})
