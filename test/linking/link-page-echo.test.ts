import { describe, expect, it } from 'vitest'
import { friend, hidden, kizunaWithSmtp, newEmail, post, tapLinkToken } from './support.ts'

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
    expect(wrong.status).toBe(400)
    const page = await wrong.text()
    expect(page).toContain('code: enter the 6 digits')
    expect(page).not.toContain('call 0120')
    expect(page).toContain(email)

    const unknown = await post(`${started.k.baseUrl}/link/code`, {
      linkToken,
      codeId: '00000000-0000-4000-8000-000000000000',
      code: '123456',
      email: planted,
    })
    expect(unknown.status).toBe(404)
    expect(await unknown.text()).not.toContain('call 0120')
  })

  it('does not show posted text that is not an email address on the email page', async () => {
    const linkToken = await freshLinkToken()
    const res = await post(`${started.k.baseUrl}/link/email`, { linkToken, email: planted })
    expect(res.status).toBe(400)
    const page = await res.text()
    expect(page).toContain('email: not a valid email address')
    expect(page).not.toContain('call 0120')
  })
})
