import type { Transaction } from 'kysely'
import { lockInSpace } from '../platform/advisory-locks.ts'
import type { DB } from '../platform/db.ts'
import { countCodesSince, countWrongCodesSince } from './link.repo.ts'
import { LINK_TTL_MS } from './link-crypto.ts'
import {
  addressLockedOut,
  lineAccountLockedOut,
  tooManyCodesForLink,
  tooManyCodesFromLineToday,
  tooManyCodesToAddress,
  tooManyCodesToAddressToday,
} from './link-page-errors.ts'

/**
 * Codes mailed, each one email (or one tried: a code whose email was not sent counts too, or a
 * relay refusing would let codes be asked for without end). Per 10 minutes: 3 to an address, 5
 * for a link token. Per 24 hours: 10 for a LINE account, whatever its link tokens (each "link"
 * tap issues one, so the per-token limit alone let one friend mail any number of addresses), and
 * 20 to an address from all LINE accounts (3 per 10 minutes alone let an address be mailed 432
 * times a day). The address cap is shared, so one LINE account (10) cannot reach it: keeping an
 * owner from codes for a day takes two.
 */
export const CODES_PER_EMAIL = 3
export const CODES_PER_LINK_TOKEN = 5
export const CODES_PER_LINE_ACCOUNT_PER_DAY = 10
export const CODES_PER_EMAIL_PER_DAY = 20

/**
 * Wrong codes per 24 hours, whatever the codes: the 10-minute limits (CODES_PER_EMAIL,
 * CODES_PER_LINK_TOKEN) alone let ~2,000 guesses a day at one address through. One LINE account may enter 10 (on any addresses): that stops
 * one attacker. An address takes 50 from all LINE accounts together: that bounds guessing
 * with many accounts (50 a day: about 1 chance in 20,000 a day of hitting a 6-digit code).
 *
 * The trade-off: the address cap is shared, so it is high enough that one or two attacker
 * accounts (capped at 10 each) cannot reach it and lock the owner out; an attacker with 5+ LINE
 * accounts still can, for a day, as the price of bounding their guesses. Other accounts'
 * failures never refuse a LINE account's code *request* (refuseRequestWhenLockedOut): only its
 * own failures do, so one account cannot stop another from asking for a code.
 */
export const WRONG_CODES_PER_LINE_ACCOUNT = 10
export const WRONG_CODES_PER_ADDRESS = 50
const DAY_MS = 24 * 60 * 60_000

/** Holds `key` until the transaction ends. */
export async function lockAttempts(trx: Transaction<DB>, key: string): Promise<void> {
  await lockInSpace(trx, 'linkAttempts', key)
}

const dayAgo = (now: Date) => new Date(now.getTime() - DAY_MS)

/**
 * Refuses a code request past the limits on codes mailed (CODES_PER_EMAIL and the rest). The
 * caller holds the LINE account's and the address's locks (lockAttempts), so concurrent requests
 * cannot all count the same codes and pass.
 */
export async function refuseCodeSend(
  trx: Transaction<DB>,
  email: string,
  token: { tokenHash: string; lineUserId: string },
  now: Date,
): Promise<void> {
  const recently = new Date(now.getTime() - LINK_TTL_MS)
  if ((await countCodesSince(trx, { email }, recently)) >= CODES_PER_EMAIL) {
    throw tooManyCodesToAddress()
  }
  const byToken = await countCodesSince(trx, { linkTokenHash: token.tokenHash }, recently)
  if (byToken >= CODES_PER_LINK_TOKEN) throw tooManyCodesForLink()
  const since = dayAgo(now)
  if (
    (await countCodesSince(trx, { lineUserId: token.lineUserId }, since)) >=
    CODES_PER_LINE_ACCOUNT_PER_DAY
  ) {
    throw tooManyCodesFromLineToday()
  }
  if ((await countCodesSince(trx, { email }, since)) >= CODES_PER_EMAIL_PER_DAY) {
    throw tooManyCodesToAddressToday()
  }
}

/**
 * Refuses a code request from a LINE account that used its day's wrong codes, or that itself
 * entered wrong codes for this address once the address used its day's: a LINE account that
 * has not failed on the address is never refused for what other accounts did (its code then
 * meets the address cap when entered; see WRONG_CODES_PER_ADDRESS).
 */
export async function refuseRequestWhenLockedOut(
  trx: Transaction<DB>,
  email: string,
  lineUserId: string,
  now: Date,
): Promise<void> {
  const since = dayAgo(now)
  if ((await countWrongCodesSince(trx, { lineUserId }, since)) >= WRONG_CODES_PER_LINE_ACCOUNT) {
    throw lineAccountLockedOut()
  }
  if (
    (await countWrongCodesSince(trx, { email, lineUserId }, since)) > 0 &&
    (await countWrongCodesSince(trx, { email }, since)) >= WRONG_CODES_PER_ADDRESS
  ) {
    throw addressLockedOut()
  }
}

/**
 * The wrong codes the LINE account, and the address (when the code is known), may still enter
 * in the 24 hours; refuses either when none are left.
 */
export async function wrongCodesLeftToday(
  trx: Transaction<DB>,
  email: string | undefined,
  lineUserId: string,
  now: Date,
): Promise<{ account: number; address: number }> {
  const since = dayAgo(now)
  const account =
    WRONG_CODES_PER_LINE_ACCOUNT - (await countWrongCodesSince(trx, { lineUserId }, since))
  if (account <= 0) throw lineAccountLockedOut()
  const address =
    email === undefined
      ? WRONG_CODES_PER_ADDRESS
      : WRONG_CODES_PER_ADDRESS - (await countWrongCodesSince(trx, { email }, since))
  if (address <= 0) throw addressLockedOut()
  return { account, address }
}
