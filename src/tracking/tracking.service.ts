import { publicBaseUrl } from '../cards/card-url.ts'
import type { ConsentCategory } from '../consent/consent.schemas.ts'
import { withdrawEmailConsent } from '../consent/consent.service.ts'
import type { Database } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { getAppSecret } from '../platform/secrets.ts'
import { insertDeliveryEvent } from './tracking.repo.ts'
import { pixelTag, rewriteEmailHtml, unsubscribeFooterTag } from './tracking-html.ts'
import { signTrackingToken, type TrackingPayload, verifyTrackingToken } from './tracking-token.ts'

export type EmailTracking = {
  /** `/u/:token`: for the List-Unsubscribe header (RFC 8058 one-click) and the footer link. */
  unsubscribeUrl: string
  /** `/o/:token`: a 1×1 image that records the open. */
  openPixelUrl: string
  /**
   * Every http(s) link through `/r/:token` (one whose tracked URL would be longer than
   * MAX_TRACKED_URL_LENGTH stays as written), then the unsubscribe link (untracked) and the open
   * pixel before `</body>`.
   */
  rewriteHtml(html: string): string
}

/**
 * The longest `/r/:token` URL made: a longer one (from a link of about 6,000 characters) would be
 * refused by proxies on the way (8 KiB request lines, as nginx's default) or by the token check
 * (12,000 characters), and the click would end on an error page. Such a link is left as written:
 * it still works, uncounted.
 */
export const MAX_TRACKED_URL_LENGTH = 8_000

/**
 * The tracked URLs of one email (built when the delivery engine sends it). Signing happens here
 * with the secret loaded once, so `rewriteHtml` is synchronous and costs one parse of the HTML.
 */
export async function emailTracking(
  deps: Pick<Deps, 'db' | 'env'>,
  d: { deliveryId: string; customerId: string; category: ConsentCategory },
): Promise<EmailTracking> {
  const secret = await getAppSecret(deps.db, 'tokens')
  const base = publicBaseUrl(deps.env)
  const url = (path: 'o' | 'r' | 'u', token: string) => `${base}/${path}/${token}`
  const openPixelUrl = url('o', signTrackingToken<'o'>(secret, ['o', d.deliveryId]))
  const unsubscribeUrl = url(
    'u',
    signTrackingToken<'u'>(secret, ['u', d.deliveryId, d.customerId, d.category]),
  )
  // Added after the links are rewritten: unsubscribing is not a click on the message.
  const ending = unsubscribeFooterTag(unsubscribeUrl) + pixelTag(openPixelUrl)
  return {
    unsubscribeUrl,
    openPixelUrl,
    rewriteHtml: (html) =>
      rewriteEmailHtml(
        html,
        (target) => {
          const tracked = url('r', signTrackingToken<'r'>(secret, ['r', d.deliveryId, target]))
          return tracked.length > MAX_TRACKED_URL_LENGTH ? null : tracked
        },
        ending,
      ),
  }
}

async function check<K extends 'o' | 'r' | 'u'>(
  db: Database,
  kind: K,
  token: string,
): Promise<TrackingPayload<K> | null> {
  return verifyTrackingToken(await getAppSecret(db, 'tokens'), kind, token)
}

/**
 * `/o/:token`: records the delivery's first open (a later fetch adds nothing); false when the
 * token is not one of ours.
 */
export async function recordOpen(db: Database, token: string): Promise<boolean> {
  const payload = await check(db, 'o', token)
  if (!payload) return false
  await insertDeliveryEvent(db, { deliveryId: payload[1], kind: 'open' })
  return true
}

/** The signed target of a `/r/:token` link, or null when the token is not one of ours. */
export async function clickTarget(
  db: Database,
  token: string,
): Promise<{ deliveryId: string; url: string } | null> {
  const payload = await check(db, 'r', token)
  return payload ? { deliveryId: payload[1], url: payload[2] } : null
}

export async function recordClick(db: Database, click: { deliveryId: string; url: string }) {
  await insertDeliveryEvent(db, { ...click, kind: 'click' })
}

export type UnsubscribeTarget = {
  deliveryId: string
  customerId: string
  category: ConsentCategory
}

/** What a `/u/:token` link unsubscribes from, or null when the token is not one of ours. */
export async function unsubscribeTarget(
  db: Database,
  token: string,
): Promise<UnsubscribeTarget | null> {
  const payload = await check(db, 'u', token)
  return payload ? { deliveryId: payload[1], customerId: payload[2], category: payload[3] } : null
}

/**
 * What an email's unsubscribe link stops by email: its category, and marketing with a receipt's
 * (transactional): the person pressed Unsubscribe in their mail app, and offers are the last
 * email they would want to keep getting.
 */
export function unsubscribedCategories(category: ConsentCategory): ConsentCategory[] {
  return category === 'transactional' ? ['transactional', 'marketing'] : ['marketing']
}

/**
 * Revokes by email what the link stops (unsubscribedCategories) and records the unsubscribe, in
 * one transaction; a repeat changes nothing.
 */
export async function unsubscribeByEmail(db: Database, target: UnsubscribeTarget): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await withdrawEmailConsent(
      trx,
      target.customerId,
      unsubscribedCategories(target.category),
      'email-unsubscribe',
    )
    await insertDeliveryEvent(trx, { deliveryId: target.deliveryId, kind: 'unsubscribe' })
  })
}
