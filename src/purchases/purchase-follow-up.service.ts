import { IMAGE_URL_MAX } from '../flex/flex.schemas.ts'
import { clipToLength } from '../flex/flex-limits.ts'
import { rfc3986Url } from '../flex/flex-url.ts'
import { loadMessageTemplate } from '../flex/message-template.ts'
import { enqueueDeliveries } from '../messaging/delivery.service.ts'
import type { MessageVarsLoader } from '../messaging/message-vars.ts'
import type { Deps } from '../platform/deps.ts'
import {
  type FollowUpLine,
  findFollowUpPurchase,
  findRecommendedProducts,
} from './purchase-follow-up.repo.ts'

/** The template the follow-up delivery is rendered with (flex-templates/purchase-follow-up.json). */
export const PURCHASE_FOLLOW_UP_TEMPLATE = 'purchase-follow-up'
export const MAX_RECOMMENDATIONS = 3
/**
 * Receipt lines shown (the last one sums up the rest when there are more): a receipt takes up to
 * 500 lines, LINE a bubble of 30 KB. The template's schema takes 15 (its maxItems), which with
 * every string at its maxLength in 4-byte characters, quantities of 23 characters
 * (1.7976931348623157e+308) and three recommendations with every URL at its maxLength still fit
 * (29.9 KB; `kizuna flex validate` renders that largest case).
 */
export const MAX_LINES = 15

/** The variables of the `purchase-follow-up` template. */
export type PurchaseFollowUpVars = {
  displayName: string
  storeName: string
  /** `YYYY/MM/DD HH:mm` in the store's time zone. */
  purchasedAt: string
  /** `¥12,800` */
  total: string
  lines: { name: string; quantity: number; amount: string }[]
  recommendations: {
    sku: string
    name: string
    /** `¥…`, or '' when the product has no price. */
    price: string
    /** Only an https image (LINE loads no other). */
    imageUrl?: string
    url?: string
  }[]
}

/**
 * Queues a follow-up written with a purchase, after the purchase is committed. Redis being down
 * is not an error for the register: the row is the truth and the sweeper queues due rows.
 */
export async function enqueueFollowUp(
  deps: Pick<Deps, 'queues' | 'log'>,
  followUp: { id: string; sendAfter: Date } | undefined,
): Promise<void> {
  if (!followUp) return
  try {
    // With the follow-ups of other registers' scans: one Redis round trip per 20 ms.
    await enqueueDeliveries(deps.queues, [followUp], { soon: true })
  } catch (err) {
    deps.log.warn({ err, deliveryId: followUp.id }, 'could not queue the purchase follow-up')
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const grouping = new Intl.NumberFormat('ja-JP', { maximumFractionDigits: 0 })

/** Whole yen as `¥12,800` (the half-width sign; ja-JP's currency style prints `￥`). */
export function formatYen(amount: number): string {
  return `¥${grouping.format(amount)}`
}

/**
 * The template takes product names up to 200 characters (product names may be longer) and the
 * customer's name up to 100 (an imported name may have 200).
 */
const clip = (name: string, max = 200) => clipToLength(name, max)

const CONTROL = /\s*\p{Cc}[\s\p{Cc}]*/gu

/**
 * The first of `names` left with text once on one line: the template takes no control
 * characters (names stored before they were refused, a LINE display name), so each run of them,
 * with the spaces around it, is one space.
 */
function firstName(...names: (string | null | undefined)[]): string {
  for (const name of names) {
    const line = name?.toWellFormed().replace(CONTROL, ' ').trim()
    if (line) return line
  }
  return ''
}

/** `YYYY/MM/DD HH:mm` in `timeZone`. */
export function dateTimeFormatter(timeZone: string): (at: Date) => string {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  })
  return (at) => {
    const p = Object.fromEntries(format.formatToParts(at).map((part) => [part.type, part.value]))
    return `${p.year}/${p.month}/${p.day} ${p.hour}:${p.minute}`
  }
}

/**
 * The send-time loader of `purchase-follow-up` for a store time zone (env TZ_STORE): the
 * purchase's lines and up to 3 related products the customer does not own yet. Null when the
 * purchase was voided, is gone, or no longer belongs to the delivery's customer.
 */
export function createPurchaseFollowUpVars(timeZone: string): MessageVarsLoader {
  const formatDateTime = dateTimeFormatter(timeZone)
  return async (db, delivery) => {
    const purchaseId = delivery.vars.purchaseId
    if (typeof purchaseId !== 'string' || !UUID.test(purchaseId)) return null
    const purchase = await findFollowUpPurchase(db, purchaseId)
    if (!purchase || purchase.voided_at || purchase.customer_id !== delivery.customerId) {
      return null
    }
    const products = await findRecommendedProducts(db, {
      purchaseId,
      customerId: delivery.customerId,
      limit: MAX_RECOMMENDATIONS,
    })
    const vars: PurchaseFollowUpVars = {
      displayName: clip(firstName(purchase.display_name, 'お客様'), 100),
      storeName: firstName(purchase.store_name, purchase.source),
      purchasedAt: formatDateTime(purchase.purchased_at),
      total: formatYen(purchase.total),
      lines: shownLines(purchase.lines),
      recommendations: products.map((p) => {
        const imageUrl = imageUrlOf(p.image_url)
        return {
          sku: p.sku,
          name: clip(firstName(p.name, p.sku)),
          price: p.price === null ? '' : formatYen(p.price),
          ...(imageUrl ? { imageUrl } : {}),
        }
      }),
    }
    return withoutRefusedImages(vars)
  }
}

/**
 * A product's image as LINE and the template take it: https, percent-encoded as UTF-8 RFC 3986
 * (the product import keeps `https://…/商品 写真.jpg?v={1}` as written), at most 2000 characters.
 */
function imageUrlOf(url: string | null): string | undefined {
  if (!url?.startsWith('https://')) return undefined
  const encoded = rfc3986Url(url)
  return encoded && encoded.length <= IMAGE_URL_MAX ? encoded : undefined
}

const IMAGE_URL_AT = /^\/recommendations\/(\d+)\/imageUrl$/

/**
 * The vars without the images the template's schema refuses (a host RFC 3986 refuses, which
 * no encoding mends): the message goes without those images rather than failing for good.
 */
function withoutRefusedImages(vars: PurchaseFollowUpVars): PurchaseFollowUpVars {
  const { validateVars } = loadMessageTemplate(PURCHASE_FOLLOW_UP_TEMPLATE)
  if (validateVars(vars as unknown)) return vars
  const refused = new Set<number>()
  for (const e of validateVars.errors ?? []) {
    const at = IMAGE_URL_AT.exec(e.instancePath)?.[1]
    if (at) refused.add(Number(at))
  }
  const recommendations = vars.recommendations.map(({ imageUrl, ...rec }, i) =>
    refused.has(i) || !imageUrl ? rec : { ...rec, imageUrl },
  )
  return { ...vars, recommendations }
}

/** The receipt's lines, at most MAX_LINES: past that, the last shown sums up the rest. */
function shownLines(lines: FollowUpLine[]): PurchaseFollowUpVars['lines'] {
  const show = (name: string, quantity: number, yen: number) => ({
    name: clip(name),
    quantity,
    amount: formatYen(yen),
  })
  const each = (l: FollowUpLine) =>
    show(firstName(l.product_name, l.name, l.sku), l.quantity, l.quantity * l.unit_price)
  if (lines.length <= MAX_LINES) return lines.map(each)
  const rest = lines.slice(MAX_LINES - 1)
  const sum = (pick: (l: FollowUpLine) => number) => rest.reduce((n, l) => n + pick(l), 0)
  return [
    ...lines.slice(0, MAX_LINES - 1).map(each),
    show(
      `ほか${rest.length}品目 / ${rest.length} more items`,
      sum((l) => l.quantity),
      sum((l) => l.quantity * l.unit_price),
    ),
  ]
}
