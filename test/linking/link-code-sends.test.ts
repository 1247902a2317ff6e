import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { backendPid, heldTransaction, lockWaitBehind } from '../support/locks.ts'
import {
  expectShopperError,
  friend,
  kizunaWithSmtp,
  newEmail,
  newFriendLinkToken,
  post,
  tapLinkToken,
} from './support.ts'

// Codes mailed per day: every "link" tap issues a new link token, so the 10-minute limits per
// link token and per address alone let one LINE friend mail any number of addresses, and keep
// one address getting 3 mails every 10 minutes.
const started = kizunaWithSmtp()

const sendCode = (linkToken: string, email: string) =>
  post(`${started.k.baseUrl}/link/email`, { linkToken, email })

/** How many codes were sent to an address, or for a link token. */
const codesOf = async (by: { email: string } | { linkToken: string }) =>
  (
    await started.k.deps.db
      .selectFrom('link_code')
      .select('id')
      .$call((qb) =>
        'email' in by
          ? qb.where('email', '=', by.email)
          : qb.where('link_token_hash', '=', sha256(by.linkToken)),
      )
      .execute()
  ).length

/** Moves codes a day and a minute back (rather than waiting a day). */
const aDayLater = (where: { email: string } | { linkTokens: string[] }) =>
  started.k.deps.db
    .updateTable('link_code')
    .set({ created_at: new Date(Date.now() - 24 * 60 * 60_000 - 60_000) })
    .$call((qb) =>
      'email' in where
        ? qb.where('email', '=', where.email)
        : qb.where('link_token_hash', 'in', where.linkTokens.map(sha256)),
    )
    .execute()

/** `count` codes written directly, as if sent `minutesAgo` (sending takes time, and mails). */
const codesSent = (
  count: number,
  code: () => { linkToken: string; email: string; minutesAgo: number },
) =>
  started.k.deps.db
    .insertInto('link_code')
    .values(
      Array.from({ length: count }, () => {
        const { linkToken, email, minutesAgo } = code()
        const sentAt = Date.now() - minutesAgo * 60_000
        return {
          link_token_hash: sha256(linkToken),
          email,
          code_hash: 'x',
          created_at: new Date(sentAt),
          expires_at: new Date(sentAt + 600_000),
        }
      }),
    )
    .execute()

describe('the daily cap on code emails', () => {
  it('sends at most 10 codes a day from one LINE account, whatever its link tokens', async () => {
    const user = await friend(started.k)
    const tokens = [await tapLinkToken(started.k, user.userId)]
    for (let i = 0; i < 10; i++) {
      if (i === 5) tokens.push(await tapLinkToken(started.k, user.userId))
      expect((await sendCode(tokens.at(-1) ?? '', newEmail())).status).toBe(200)
    }
    tokens.push(await tapLinkToken(started.k, user.userId))
    const email = newEmail()
    const eleventh = await sendCode(tokens.at(-1) ?? '', email)
    await expectShopperError(eleventh, 429, {
      en: 'Too many codes were requested from this LINE account today: you can ask again within 24 hours',
      ja: '本日このLINEアカウントから送信できるコードの上限に達しました',
    })
    expect(await codesOf({ email })).toBe(0)

    await aDayLater({ linkTokens: tokens })
    expect((await sendCode(tokens.at(-1) ?? '', email)).status).toBe(200)
  })

  it('mails one address at most 20 codes a day, from all LINE accounts', async () => {
    const email = newEmail()
    // 19 codes from other LINE accounts an hour ago, written directly: the 3 codes per 10
    // minutes would make sending them take an hour.
    await codesSent(19, () => ({ linkToken: randomUUID(), email, minutesAgo: 60 }))
    const token = () => newFriendLinkToken(started.k)
    expect((await sendCode(await token(), email)).status).toBe(200)
    const capped = await sendCode(await token(), email)
    await expectShopperError(capped, 429, {
      en: 'Too many codes were sent to this email address today: you can ask again within 24 hours',
      ja: '本日このメールアドレスに送信できるコードの上限に達しました',
    })
    expect(await codesOf({ email })).toBe(20)

    await aDayLater({ email })
    expect((await sendCode(await token(), email)).status).toBe(200)
  })

  it('keeps to 5 codes per link token when its requests arrive together', async () => {
    const { k } = started
    const linkToken = await newFriendLinkToken(k)
    await codesSent(4, () => ({ linkToken, email: newEmail(), minutesAgo: 0 }))
    // Holding off every code's insert lets 6 requests (6 addresses) all count the 4 codes
    // before any of them writes its own, unless they take turns.
    let pid = 0
    const held = await heldTransaction(k.deps.db, async (trx) => {
      pid = await backendPid(trx)
      await sql`lock table link_code in share mode`.execute(trx)
    })
    const answers = Array.from({ length: 6 }, () => sendCode(linkToken, newEmail()))
    await lockWaitBehind(k.deps.db, pid, 6)
    held.commit()
    await held.committed
    const statuses = (await Promise.all(answers)).map((r) => r.status).sort()
    expect(statuses).toEqual([200, 429, 429, 429, 429, 429])
    expect(await codesOf({ linkToken })).toBe(5)
    await expectShopperError(await sendCode(linkToken, newEmail()), 429, {
      en: 'Too many codes were requested with this link: wait 10 minutes',
      ja: 'このリンクからのコード送信が多すぎます。10分ほど待ってから',
    })
  })
})
