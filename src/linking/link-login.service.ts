import { randomUUID } from 'node:crypto'
import { z } from 'zod'
import { findCustomerByIdentity } from '../customers/customer-lookup.service.ts'
import { emailSchema } from '../customers/identity-values.ts'
import { type Mailer, messageMayHaveArrived } from '../email/mailer.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import { getAppSecret, sameSecret } from '../platform/secrets.ts'
import {
  findLinkCode,
  findLinkToken,
  insertLinkCode,
  insertNonce,
  markCodeVerified,
  spendCodeAttempt,
  withdrawLinkCode,
} from './link.repo.ts'
import {
  lockAttempts,
  refuseCodeSend,
  refuseRequestWhenLockedOut,
  wrongCodesLeftToday,
} from './link-code-limits.ts'
import { hashCode, LINK_TTL_MS, newCode, newNonce, sha256 } from './link-crypto.ts'
import {
  addressLockedOut,
  codeExpired,
  codeNotDigits,
  codeTriesUsed,
  codeUnknown,
  codeUsed,
  codeWrong,
  emailInvalid,
  emailNotSent,
  lineAccountLockedOut,
  linkExpired,
  linkOfLinkedAccount,
  linkUnusable,
  loginUsed,
} from './link-page-errors.ts'

export const MAX_CODE_ATTEMPTS = 5
/**
 * How long the shopper's page waits for the code's email rather than hang for the mailer's two
 * minutes: a relay that has not got the whole email by then gets "try again" (and the code is
 * withdrawn); one that got it all and has not answered may deliver it, so the code is asked for.
 */
export const CODE_EMAIL_TIMEOUT_MS = 15_000

/** LINE's account-link dialog; a sandbox run has its own stand-in (`/sandbox/dialog/...`). */
export const LINE_ACCOUNT_LINK_URL = 'https://access.line.me/dialog/bot/accountLink'

type LoginDeps = Pick<Deps, 'db' | 'clock' | 'log'>
export type LinkTokenRef = { linkToken: string; tokenHash: string; lineUserId: string }

const linkTokenSchema = z.string().trim().min(1).max(200)

/**
 * The link token of a page request: one we issued and not expired, else a LinkTokenRefusal the
 * shopper can read (a missing or malformed one "can't be used", as an unknown one). The token
 * of a LINE user erased since is refused as expired: for its last minutes it would
 * otherwise take the person's email again (and mail them a code). So is the token of a LINE
 * account linked since it was issued (the shopper tapped "link" twice): a LINE account links one
 * online account at a time (handleAccountLink refuses the nonce too).
 */
export async function checkLinkToken(deps: LoginDeps, raw: unknown): Promise<LinkTokenRef> {
  const parsed = linkTokenSchema.safeParse(raw)
  if (!parsed.success) throw linkUnusable('BAD_REQUEST')
  const tokenHash = sha256(parsed.data)
  const row = await findLinkToken(deps.db, tokenHash)
  if (!row) throw linkUnusable('NOT_FOUND')
  if (row.erased || row.expires_at <= deps.clock.now()) throw linkExpired()
  if (row.linked) throw linkOfLinkedAccount()
  return { linkToken: parsed.data, tokenHash, lineUserId: row.line_user_id }
}

/** Sends a 6-digit code to `email` for this link token; returns the code's id (not secret). */
export async function requestLinkCode(
  deps: LoginDeps,
  mailer: Mailer,
  token: LinkTokenRef,
  rawEmail: unknown,
): Promise<{ codeId: string; email: string }> {
  const parsed = emailSchema.safeParse(typeof rawEmail === 'string' ? rawEmail : '')
  if (!parsed.success) throw emailInvalid()
  const email = parsed.data
  const now = deps.clock.now()
  const codeId = randomUUID()
  const code = newCode()
  const secret = await getAppSecret(deps.db, 'tokens')

  await deps.db.transaction().execute(async (trx) => {
    // One request at a time per LINE account (so per link token), then per address (the order
    // verifyLinkCode takes them in), so the counts below cannot be raced past.
    await lockAttempts(trx, `link-line-user:${token.lineUserId}`)
    await lockAttempts(trx, `link-code:${email}`)
    await refuseRequestWhenLockedOut(trx, email, token.lineUserId, now)
    await refuseCodeSend(trx, email, token, now)
    await insertLinkCode(trx, {
      id: codeId,
      linkTokenHash: token.tokenHash,
      email,
      codeHash: hashCode(secret, codeId, code),
      expiresAt: new Date(now.getTime() + LINK_TTL_MS),
    })
  })
  // Sent after the commit: no transaction is held across the SMTP conversation.
  try {
    await mailer.send(
      {
        to: email,
        subject: `Your verification code: ${code}`,
        text:
          `Your code to link your LINE account: ${code}\n` +
          'It is valid for 10 minutes. If you did not ask for it, ignore this email.\n\n' +
          `LINEアカウント連携の確認コード: ${code}（10分間有効）\n`,
      },
      { signal: AbortSignal.timeout(CODE_EMAIL_TIMEOUT_MS) },
    )
  } catch (err) {
    // The relay's reply can quote the address (`550 5.1.1 <a@b.jp>: Recipient address
    // rejected`): log its codes only, as email-send does.
    const reply = (err ?? {}) as { code?: string; responseCode?: number }
    const fields = { code: reply.code, responseCode: reply.responseCode }
    if (messageMayHaveArrived(err)) {
      // The relay got the whole email and never answered (it dropped the connection, or took
      // longer than CODE_EMAIL_TIMEOUT_MS): it may well arrive. The shopper is asked for the
      // code, which stays good; withdrawn, the code that arrived would be "unknown".
      deps.log.warn(
        fields,
        'link code email outcome unknown: the relay got it all and did not answer',
      )
      return { codeId, email }
    }
    // Not sent: the code can no longer be entered, but stays (until the nightly purge) to count
    // toward the limits on codes mailed, or a relay that refuses would let them be asked for
    // without end.
    await withdrawLinkCode(deps.db, codeId, now)
    if (err instanceof AppError) throw err
    deps.log.warn(fields, 'link code email not sent')
    throw emailNotSent()
  }
  return { codeId, email }
}

const codeIdSchema = z.uuid()
/**
 * The code as typed: NFKC reads full-width digits (１２３４５６, typed with the Japanese IME on)
 * as ASCII, and spaces (U+3000 too) anywhere are dropped.
 */
const codeSchema = z
  .string()
  .transform((s) => s.normalize('NFKC').replace(/\s/g, ''))
  .pipe(z.string().regex(/^\d{6}$/))

/**
 * Checks a code (each try uses one of 5 attempts, one of the LINE account's 10 wrong codes a
 * day and one of the address's 50); when right, issues the nonce and returns LINE's
 * account-link URL to redirect to.
 */
export async function verifyLinkCode(
  deps: LoginDeps,
  token: LinkTokenRef,
  input: { codeId: unknown; code: unknown },
  dialogUrl = LINE_ACCOUNT_LINK_URL,
): Promise<string> {
  const codeId = codeIdSchema.safeParse(input.codeId)
  if (!codeId.success) throw codeUnknown('BAD_REQUEST')
  const code = codeSchema.safeParse(typeof input.code === 'string' ? input.code : '')
  if (!code.success) throw codeNotDigits()
  const now = deps.clock.now()
  const spent = await deps.db.transaction().execute(async (trx) => {
    // One check-and-spend at a time per LINE account, then per address (requestLinkCode takes
    // them in the same order: no cycle), so the daily cap cannot be raced past.
    await lockAttempts(trx, `link-line-user:${token.lineUserId}`)
    const found = await findLinkCode(trx, codeId.data)
    const email = found?.link_token_hash === token.tokenHash ? found.email : undefined
    if (email !== undefined) await lockAttempts(trx, `link-code:${email}`)
    const dayLeft = await wrongCodesLeftToday(trx, email, token.lineUserId, now)
    const row = await spendCodeAttempt(trx, {
      id: codeId.data,
      linkTokenHash: token.tokenHash,
      now,
      maxAttempts: MAX_CODE_ATTEMPTS,
    })
    return row && { row, dayLeft }
  })
  if (!spent) throw await whyNoAttempt(deps, codeId.data, token.tokenHash, now)
  const { row } = spent
  const secret = await getAppSecret(deps.db, 'tokens')
  if (!sameSecret(row.code_hash, hashCode(secret, row.id, code.data))) {
    // This wrong code used one of each day's budget.
    if (spent.dayLeft.account <= 1) throw lineAccountLockedOut()
    if (spent.dayLeft.address <= 1) throw addressLockedOut()
    const dayLeft = Math.min(spent.dayLeft.account, spent.dayLeft.address) - 1
    const left = Math.min(MAX_CODE_ATTEMPTS - row.attempts, dayLeft)
    throw left <= 0 ? codeTriesUsed() : codeWrong(left)
  }
  if (!(await markCodeVerified(deps.db, row.id, now))) throw codeUsed()
  return issueNonceRedirect(deps, token, { kind: 'email', value: row.email }, dialogUrl)
}

/**
 * The address a code of this link token was sent to, for the code page on an error: never the
 * address the form posted (any site can post that form). Undefined when the code is not known.
 */
export async function addressOfCode(
  deps: LoginDeps,
  rawLinkToken: unknown,
  rawCodeId: unknown,
): Promise<string | undefined> {
  const linkToken = linkTokenSchema.safeParse(rawLinkToken)
  const codeId = codeIdSchema.safeParse(rawCodeId)
  if (!linkToken.success || !codeId.success) return undefined
  const row = await findLinkCode(deps.db, codeId.data)
  return row?.link_token_hash === sha256(linkToken.data) ? row.email : undefined
}

/** The posted code id to put back in the code form on an error: a code id, or none. */
export function codeIdToShowAgain(raw: unknown): string {
  const parsed = codeIdSchema.safeParse(raw)
  return parsed.success ? parsed.data : ''
}

/** The posted address to fill the email form in again on an error: an email address, or none. */
export function addressToShowAgain(raw: unknown): string | undefined {
  const parsed = emailSchema.safeParse(typeof raw === 'string' ? raw : '')
  return parsed.success ? parsed.data : undefined
}

async function whyNoAttempt(deps: LoginDeps, id: string, tokenHash: string, now: Date) {
  const row = await findLinkCode(deps.db, id)
  if (!row || row.link_token_hash !== tokenHash) return codeUnknown()
  if (row.verified_at) return codeUsed()
  if (row.attempts >= MAX_CODE_ATTEMPTS) return codeTriesUsed()
  if (row.expires_at <= now) return codeExpired()
  return codeUnknown()
}

/**
 * The online account is proven: stores a single-use nonce (sha256) for it and returns LINE's
 * account-link dialog URL. The customer owning the identity is noted when there is one; when
 * there is none, nothing is created until LINE confirms the link (no orphan customers). Proven
 * by the shop's login, the assertion's hash goes with the nonce: one nonce per assertion.
 */
export async function issueNonceRedirect(
  deps: LoginDeps,
  token: LinkTokenRef,
  identity: { kind: 'email' | 'online_customer'; value: string },
  dialogUrl = LINE_ACCOUNT_LINK_URL,
  proof: { assertionHash?: string } = {},
): Promise<string> {
  const nonce = newNonce()
  const customerId = await findCustomerByIdentity(deps.db, identity.kind, identity.value)
  const issued = await insertNonce(deps.db, {
    nonceHash: sha256(nonce),
    linkTokenHash: token.tokenHash,
    lineUserId: token.lineUserId,
    customerId: customerId ?? null,
    identityKind: identity.kind,
    identityValue: identity.value,
    expiresAt: new Date(deps.clock.now().getTime() + LINK_TTL_MS),
    assertionHash: proof.assertionHash,
  })
  if (!issued) throw loginUsed()
  // The dialog URL may be a path on this server (the sandbox's stand-in for LINE's dialog).
  return `${dialogUrl}?${new URLSearchParams({ linkToken: token.linkToken, nonce })}`
}
