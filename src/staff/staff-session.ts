import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import { isKeyActive } from '../auth/api-key.service.ts'
import type { Db } from '../platform/db.ts'
import { getAppSecret } from '../platform/secrets.ts'
import { isStaffSessionEnded } from './staff.repo.ts'

/** A register shift; logging in again renews it. */
export const STAFF_SESSION_TTL_SECONDS = 8 * 3600
export const STAFF_COOKIE = 'kizuna_staff'

/** Keeps these signatures apart from other tokens signed with the same `tokens` secret. */
const PURPOSE = 'kizuna.staff-session.v1.'

const payloadSchema = z.object({
  // The session's own id, new at each login: logging out ends this one, not the key's others.
  i: z.uuid(),
  k: z.uuid(),
  s: z.uuid(),
  c: z.string().min(1).max(64),
  n: z.string().max(200),
  exp: z.number().int().positive(),
})

/** Who is logged in: the API key's id and its store; never the key itself. */
export type StaffSession = { keyId: string; storeId: string; storeCode: string; storeName: string }

/** A verified session, with what logging out needs to end it. */
export type VerifiedStaffSession = StaffSession & { sessionId: string; expiresAt: Date }

function signature(secret: string, payload: string): Buffer {
  return createHmac('sha256', secret)
    .update(PURPOSE + payload)
    .digest()
}

/** `base64url(JSON payload) . base64url(HMAC-SHA256)`, valid until `expiresAt`. */
export async function signStaffSession(
  db: Db,
  session: StaffSession,
  expiresAt: Date,
): Promise<string> {
  const secret = await getAppSecret(db, 'tokens')
  const body = {
    i: randomUUID(),
    k: session.keyId,
    s: session.storeId,
    c: session.storeCode,
    n: session.storeName,
    exp: Math.floor(expiresAt.getTime() / 1000),
  }
  const payload = Buffer.from(JSON.stringify(body)).toString('base64url')
  return `${payload}.${signature(secret, payload).toString('base64url')}`
}

/**
 * The session in a cookie value, or undefined when it is missing, forged, expired, logged out
 * or its key is revoked.
 */
export async function verifyStaffSession(
  db: Db,
  token: string | undefined,
  now: Date,
): Promise<VerifiedStaffSession | undefined> {
  const match = token ? /^([A-Za-z0-9_-]{1,1000})\.([A-Za-z0-9_-]{43})$/.exec(token) : null
  if (!match) return undefined
  const [, payload = '', sig = ''] = match
  const secret = await getAppSecret(db, 'tokens')
  // Compared as text: decoding first let four spellings of the last character through.
  const given = Buffer.from(sig)
  const expected = Buffer.from(signature(secret, payload).toString('base64url'))
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
  const parsed = payloadSchema.safeParse(decoded)
  if (!parsed.success || parsed.data.exp * 1000 <= now.getTime()) return undefined
  const { i, k, s, c, n, exp } = parsed.data
  // The key's status is auth's to tell; whether this session was logged out is ours.
  if (!(await isKeyActive(db, k)) || (await isStaffSessionEnded(db, i))) return undefined
  return {
    keyId: k,
    storeId: s,
    storeCode: c,
    storeName: n,
    sessionId: i,
    expiresAt: new Date(exp * 1000),
  }
}
