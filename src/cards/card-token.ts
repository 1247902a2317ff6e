import { createHmac, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import type { Db } from '../platform/db.ts'
import { getAppSecret } from '../platform/secrets.ts'

/** How long a barcode link in a LINE message keeps working; asking for the card again renews it. */
export const CARD_TOKEN_TTL_SECONDS = 30 * 24 * 3600

/** Keeps these signatures apart from other tokens signed with the same `tokens` secret. */
const PURPOSE = 'kizuna.card-barcode.v1.'

const payloadSchema = z.object({ c: z.uuid(), exp: z.number().int().positive() })

export type CardTokenCheck =
  | { ok: true; identityId: string; expiresAt: Date }
  | { ok: false; reason: 'invalid' | 'expired' }

function signature(secret: string, payload: string): Buffer {
  return createHmac('sha256', secret)
    .update(PURPOSE + payload)
    .digest()
}

/**
 * `base64url(JSON {c: member-card identity id, exp: unix seconds}) . base64url(HMAC-SHA256)`.
 * It names a card row by its random id only: no card number, name or LINE id.
 */
export async function signCardToken(db: Db, identityId: string, expiresAt: Date): Promise<string> {
  const secret = await getAppSecret(db, 'tokens')
  const exp = Math.floor(expiresAt.getTime() / 1000)
  const payload = Buffer.from(JSON.stringify({ c: identityId, exp })).toString('base64url')
  return `${payload}.${signature(secret, payload).toString('base64url')}`
}

export async function verifyCardToken(db: Db, token: string, now: Date): Promise<CardTokenCheck> {
  const match = /^([A-Za-z0-9_-]{1,200})\.([A-Za-z0-9_-]{43})$/.exec(token)
  if (!match) return { ok: false, reason: 'invalid' }
  const [, payload = '', sig = ''] = match
  const secret = await getAppSecret(db, 'tokens')
  // Compared as text: decoding first let four spellings of the last character through.
  const given = Buffer.from(sig)
  const expected = Buffer.from(signature(secret, payload).toString('base64url'))
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: 'invalid' }
  }
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
  } catch {
    return { ok: false, reason: 'invalid' }
  }
  const parsed = payloadSchema.safeParse(decoded)
  if (!parsed.success) return { ok: false, reason: 'invalid' }
  const expiresAt = new Date(parsed.data.exp * 1000)
  if (expiresAt.getTime() <= now.getTime()) return { ok: false, reason: 'expired' }
  return { ok: true, identityId: parsed.data.c, expiresAt }
}
