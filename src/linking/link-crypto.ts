import { createHash, createHmac, randomBytes, randomInt } from 'node:crypto'

/** How long a link token (LINE's own limit), a one-time code and a nonce stay valid. */
export const LINK_TTL_MS = 10 * 60_000

/** sha256 hex: how link tokens and nonces are stored (they are high-entropy already). */
export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

/** A nonce for LINE: 128 bits from a CSPRNG (more is allowed), base64url, 22 chars. */
export function newNonce(): string {
  return randomBytes(16).toString('base64url')
}

/** A 6-digit one-time code, uniformly drawn. */
export function newCode(): string {
  return randomInt(0, 1_000_000).toString().padStart(6, '0')
}

/**
 * A 6-digit code has only a million values, so a plain hash would fall to a table lookup:
 * it is stored as an HMAC under the app's secret, bound to its row.
 */
export function hashCode(secret: string, codeId: string, code: string): string {
  return createHmac('sha256', secret).update(`link-code:${codeId}:${code}`).digest('hex')
}

export function hmacBase64url(secret: string, data: string): string {
  return createHmac('sha256', secret).update(data).digest('base64url')
}
