import { createHmac, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'

/**
 * Email links: `base64url(JSON payload) . base64url(HMAC-SHA256)`, keyed with the `tokens` app
 * secret (as member-card links are) under a purpose of their own, so neither kind of token is
 * valid as the other. Payloads carry ids (and a click's target URL), never an email address.
 * They do not expire: an unsubscribe link must keep working as long as the email exists.
 */
const PURPOSE = 'kizuna.email-link.v1.'

const uuid = z.uuid()
const httpUrl = z.url({ protocol: /^https?$/ })

const payloadSchemas = {
  /** Email open pixel: the delivery. */
  o: z.tuple([z.literal('o'), uuid]),
  /** Tracked click: the delivery and the URL it goes to. */
  r: z.tuple([z.literal('r'), uuid, httpUrl]),
  /** Unsubscribe: the delivery, the customer and the category. */
  u: z.tuple([z.literal('u'), uuid, uuid, z.enum(['transactional', 'marketing'])]),
} as const

export type TrackingKind = keyof typeof payloadSchemas
export type TrackingPayload<K extends TrackingKind> = z.infer<(typeof payloadSchemas)[K]>

const TOKEN_PATTERN = /^([A-Za-z0-9_-]{1,12000})\.([A-Za-z0-9_-]{43})$/

function mac(secret: string, payload: string): Buffer {
  return createHmac('sha256', secret)
    .update(PURPOSE + payload)
    .digest()
}

export function signTrackingToken<K extends TrackingKind>(
  secret: string,
  payload: TrackingPayload<K>,
): string {
  const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url')
  return `${encoded}.${mac(secret, encoded).toString('base64url')}`
}

/** The payload of a token of `kind` signed with `secret`; null when forged, altered or other. */
export function verifyTrackingToken<K extends TrackingKind>(
  secret: string,
  kind: K,
  token: string,
): TrackingPayload<K> | null {
  const match = TOKEN_PATTERN.exec(token)
  if (!match) return null
  const [, encoded = '', sig = ''] = match
  // Compared as text: base64url has several spellings of the last character, only one is ours.
  const given = Buffer.from(sig)
  const expected = Buffer.from(mac(secret, encoded).toString('base64url'))
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'))
  } catch {
    return null
  }
  const parsed = payloadSchemas[kind].safeParse(decoded)
  return parsed.success ? (parsed.data as TrackingPayload<K>) : null
}
