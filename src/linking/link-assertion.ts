import { z } from 'zod'
import { emailSchema } from '../customers/identity-values.ts'
import { AppError, describeFields } from '../platform/errors.ts'
import { checkInput } from '../platform/input.ts'
import { sameSecret } from '../platform/secrets.ts'
import { hmacBase64url, sha256 } from './link-crypto.ts'

/**
 * The shop's own login (LINK_LOGIN_URL) sends the shopper back to `/link/callback?assertion=…`
 * with `base64url(JSON payload) + "." + base64url(HMAC-SHA256(LINK_ASSERTION_SECRET, first part))`.
 * The payload names the account (`externalId` or `email`), the link token, and `exp` (unix s).
 */
const payloadSchema = z
  .object({
    externalId: z.string().trim().min(1).max(200).optional(),
    email: emailSchema.optional(),
    linkToken: z.string().min(1).max(200),
    exp: z.number().int().positive(),
  })
  .refine((p) => p.externalId !== undefined || p.email !== undefined, {
    message: 'externalId or email is required',
  })

export type LinkAssertion = {
  linkToken: string
  identity: { kind: 'online_customer' | 'email'; value: string }
  /** sha256 of the signed part: the assertion is single use (one nonce at most). */
  hash: string
}

export function signLinkAssertion(secret: string, payload: Record<string, unknown>): string {
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url')
  return `${body}.${hmacBase64url(secret, body)}`
}

/** The refusal of an assertion signed with another secret than LINK_ASSERTION_SECRET. */
export const BAD_SIGNATURE = 'assertion: bad signature'

export function verifyLinkAssertion(secret: string, raw: unknown, now: Date): LinkAssertion {
  const bad = (why: string) => new AppError('BAD_REQUEST', `assertion: ${why}`)
  if (typeof raw !== 'string' || raw.length > 4_000) throw bad('missing or too long')
  const [body, signature, extra] = raw.split('.')
  if (!body || !signature || extra !== undefined) throw bad('malformed')
  if (!sameSecret(signature, hmacBase64url(secret, body))) {
    throw new AppError('BAD_REQUEST', BAD_SIGNATURE)
  }
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'))
  } catch {
    throw bad('malformed payload')
  }
  const checked = checkInput(payloadSchema, json)
  if (!checked.ok) throw bad(describeFields(checked.fields))
  if (checked.data.exp * 1000 <= now.getTime()) {
    throw new AppError('GONE', 'assertion: expired; log in again')
  }
  const { externalId, email, linkToken } = checked.data
  return {
    linkToken,
    hash: sha256(body),
    identity: externalId
      ? { kind: 'online_customer', value: externalId }
      : { kind: 'email', value: email as string },
  }
}
