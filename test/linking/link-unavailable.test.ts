import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { insertLinkToken } from '../../src/linking/link.repo.ts'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import { expectShopperError, friend, newEmail, post } from './support.ts'

// Real LINE credentials (the stand-in), and neither SMTP_URL nor LINK_LOGIN_URL: no way for a
// shopper to prove an online account.
let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna({ PUBLIC_BASE_URL: 'https://shop.example' })
})
afterAll(async () => {
  await k?.stopAll()
})

const notOffered = {
  en: 'linking your online shop account is not available yet',
  ja: 'オンラインショップのアカウント連携は、まだご利用いただけません',
}

/** A link token issued to a new friend before email was turned off (none is issued now). */
async function linkTokenIssuedEarlier(): Promise<string> {
  const user = await friend(k)
  const lineUser = await k.deps.db
    .selectFrom('line_user')
    .select('id')
    .where('line_uid', '=', user.userId)
    .executeTakeFirstOrThrow()
  const linkToken = `old-${user.userId}`
  await insertLinkToken(k.deps.db, {
    tokenHash: sha256(linkToken),
    lineUserId: lineUser.id,
    expiresAt: new Date(Date.now() + 60_000),
  })
  return linkToken
}

describe('account link with no way to prove an account (no SMTP_URL, no LINK_LOGIN_URL)', () => {
  it('answers the "link" tap that linking is not available yet, and asks LINE for no link token', async () => {
    const user = await friend(k)
    await k.line.users.postback(user.userId, 'action=link')
    await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(2))
    const [answer] = k.line.inbox(user.userId).slice(1)
    expect(answer?.endpoint).toBe('reply')
    expect(answer?.message).toMatchObject({ type: 'text' })
    expect(JSON.stringify(answer?.message)).toContain('not available yet')
    expect(k.line.requestsTo('POST', `/v2/bot/user/${user.userId}/linkToken`)).toEqual([])
    const tokens = await k.deps.db
      .selectFrom('link_token')
      .innerJoin('line_user', 'line_user.id', 'link_token.line_user_id')
      .select('token_hash')
      .where('line_user.line_uid', '=', user.userId)
      .execute()
    expect(tokens).toEqual([])
  })

  it('shows a link issued earlier (before email was turned off) as not available, not an email form', async () => {
    const linkToken = await linkTokenIssuedEarlier()
    const page = await fetch(`${k.baseUrl}/link?linkToken=${encodeURIComponent(linkToken)}`)
    const html = await expectShopperError(page, 503, notOffered)
    expect(html).not.toContain('name="email"')
  })

  it('answers the email-code forms posted with such a link as not available, and writes no code', async () => {
    const linkToken = await linkTokenIssuedEarlier()
    const email = newEmail()
    const sent = await post(`${k.baseUrl}/link/email`, { linkToken, email })
    const sentPage = await expectShopperError(sent, 503, notOffered)
    expect(sentPage).not.toContain('SMTP_URL')
    expect(sentPage).not.toContain('name="email"')
    const checked = await post(`${k.baseUrl}/link/code`, {
      linkToken,
      codeId: randomUUID(),
      code: '123456',
    })
    expect(await expectShopperError(checked, 503, notOffered)).not.toContain('name="code"')
    const codes = await k.deps.db
      .selectFrom('link_code')
      .select('id')
      .where((eb) =>
        eb.or([eb('email', '=', email), eb('link_token_hash', '=', sha256(linkToken))]),
      )
      .execute()
    expect(codes).toEqual([])
  })
})
