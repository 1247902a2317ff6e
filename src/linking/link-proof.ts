import type { Deps } from '../platform/deps.ts'

/**
 * How a shopper proves their online account on `/link`: the shop's own login (LINK_LOGIN_URL
 * with LINK_ASSERTION_SECRET), or a code sent by email (SMTP_URL, or a sandbox run's mailbox).
 * `null`: no way at all, so no link is started (it could not finish).
 */
export type AccountProof = { kind: 'shop-login'; url: string; secret: string } | { kind: 'email' }

export function accountProof(deps: Pick<Deps, 'env' | 'mail'>): AccountProof | null {
  const { LINK_LOGIN_URL: url, LINK_ASSERTION_SECRET: secret } = deps.env
  if (url && secret) return { kind: 'shop-login', url, secret }
  return deps.mail === 'none' ? null : { kind: 'email' }
}

/** The start-up warning when accountProof is null (real LINE, no SMTP_URL, no LINK_LOGIN_URL). */
export const NO_ACCOUNT_PROOF_WARNING =
  'account link is off: neither SMTP_URL (codes sent by email) nor LINK_LOGIN_URL (the ' +
  "shop's own login) is set, so shoppers could not prove their online account; tapping " +
  '"link" answers that linking is not available yet'
