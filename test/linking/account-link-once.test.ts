import { describe, expect, it } from 'vitest'
import { sha256 } from '../../src/linking/link-crypto.ts'
import {
  codeMailedTo,
  expectShopperError,
  friend,
  hidden,
  kizunaWithSmtp,
  linkReads,
  newEmail,
  noncesIssuedFor,
  onlineCustomer,
  post,
  proveEmail,
  tapLinkToken,
} from './support.ts'

// A LINE account links one online account at a time: link tokens and nonces issued before the
// link was made (each tap on "link" issues a token valid 10 minutes) cannot add a second one.
const started = kizunaWithSmtp()

const { lineUser, identitiesOf, auditActionsOf, waitForText } = linkReads(() => started.k)

/** A friend who tapped "link" twice, used the second token (`spareUse`), then linked `email` with the first. */
async function linkedWithASpareToken<T>(email: string, spareUse: (spare: string) => Promise<T>) {
  const { k, smtp } = started
  const user = await friend(k)
  const first = await tapLinkToken(k, user.userId)
  const spare = await tapLinkToken(k, user.userId)
  const used = await spareUse(spare)
  await k.line.users.accountLink(user.userId, await proveEmail(k, smtp, first, email))
  await waitForText(user.userId, 'now linked')
  return { user, spare, used }
}

const activeLinksOf = async (lineUserId: string) =>
  started.k.deps.db
    .selectFrom('account_link')
    .select('customer_id')
    .where('line_user_id', '=', lineUserId)
    .where('unlinked_at', 'is', null)
    .execute()

describe('a LINE account already linked', () => {
  it('is not linked to a second online account by a nonce issued before the first link', async () => {
    const { k, smtp } = started
    const [a, b] = [newEmail(), newEmail()]
    await onlineCustomer(k, { email: a })
    const onlineB = await onlineCustomer(k, { email: b })
    const { user, used: dialogB } = await linkedWithASpareToken(a, (spare) =>
      proveEmail(k, smtp, spare, b),
    )

    await k.line.users.accountLink(user.userId, dialogB)
    await waitForText(user.userId, 'did not link another')
    // B's customer is untouched: not merged, its email still its own.
    const b2 = await k.deps.db
      .selectFrom('customer')
      .select('merged_into_id')
      .where('id', '=', onlineB)
      .executeTakeFirstOrThrow()
    expect(b2.merged_into_id).toBeNull()
    expect(await identitiesOf(onlineB)).toContain('email')
    const lu = await lineUser(user.userId)
    expect(await activeLinksOf(lu.id)).toEqual([{ customer_id: lu.customer_id }])
    // The nonce is spent, and its address dropped.
    const nonce = await k.deps.db
      .selectFrom('link_nonce')
      .select(['status', 'identity_value'])
      .where('nonce_hash', '=', sha256(dialogB.nonce))
      .executeTakeFirstOrThrow()
    expect(nonce).toEqual({ status: 'used', identity_value: null })
    expect(await auditActionsOf(lu.id)).toEqual(['link', 'link-rejected'])
  })

  it('refuses the link page, new codes and code checks of a link token issued before the link', async () => {
    const { k, smtp } = started
    const [a, b, c] = [newEmail(), newEmail(), newEmail()]
    const { spare, used: sent } = await linkedWithASpareToken(a, async (spare) => {
      const before = smtp.mails.length
      const page = await post(`${k.baseUrl}/link/email`, { linkToken: spare, email: b })
      expect(page.status).toBe(200)
      return {
        codeId: hidden(await page.text(), 'codeId'),
        code: await codeMailedTo(smtp, b, before),
      }
    })
    const refused = {
      en: 'your LINE account is already linked to an online account',
      ja: 'このLINEアカウントはすでにオンラインアカウントと連携済みのため、このリンクは使えません',
    }

    const page = await fetch(`${k.baseUrl}/link?linkToken=${encodeURIComponent(spare)}`)
    const body = await expectShopperError(page, 409, refused)
    expect(body).not.toContain('name="email"')

    const email = await post(`${k.baseUrl}/link/email`, { linkToken: spare, email: c })
    await expectShopperError(email, 409, refused)
    const codesToC = await k.deps.db
      .selectFrom('link_code')
      .select('id')
      .where('email', '=', c)
      .execute()
    expect(codesToC).toEqual([])

    const code = await post(`${k.baseUrl}/link/code`, { linkToken: spare, ...sent })
    await expectShopperError(code, 409, refused)
    expect(await noncesIssuedFor(k, spare)).toEqual([])
  })
})
