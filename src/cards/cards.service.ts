import type { messagingApi } from '@line/bot-sdk'
import { renderFlexTemplate } from '../flex/render.ts'
import type { Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { CARD_TOKEN_TTL_SECONDS, signCardToken } from './card-token.ts'
import { barcodeImageUrl, lineLoadsImageUrl } from './card-url.ts'
import {
  findCardHolder,
  findMemberCardOf,
  findUsableCoupon,
  insertCouponIfCodeFree,
  insertMemberCard,
  lockCustomerForCard,
} from './cards.repo.ts'
import { randomCouponCode, WELCOME_COUPON } from './coupon.ts'
import { issueCardNumber } from './ean13.ts'

export type MemberCard = { id: string; value: string }

export type IssueOptions = {
  /** `env.MEMBER_CARD_PREFIX`. */
  prefix: string
  now: Date
  /** Give a welcome coupon with a newly issued card (default true; imports may say no). */
  welcomeCoupon?: boolean
}

const MAX_TRIES = 10

/** Issue options from the running configuration. */
export function cardIssueOptions(deps: Pick<Deps, 'env' | 'clock'>): IssueOptions {
  return { prefix: deps.env.MEMBER_CARD_PREFIX, now: deps.clock.now() }
}

/**
 * The customer's member card, issued once: concurrent callers wait on the customer row, and a
 * number already taken (e.g. by an imported card) is skipped. A new card comes with the welcome
 * coupon. Runs inside the caller's transaction.
 */
export async function ensureMemberCard(
  trx: Db,
  customerId: string,
  opts: IssueOptions,
): Promise<{ card: MemberCard; issued: boolean }> {
  await lockCustomerForCard(trx, customerId)
  const existing = await findMemberCardOf(trx, customerId)
  if (existing) return { card: existing, issued: false }
  for (let i = 0; i < MAX_TRIES; i++) {
    const card = await insertMemberCard(trx, customerId, await issueCardNumber(trx, opts.prefix))
    if (!card) continue
    if (opts.welcomeCoupon !== false) await giveWelcomeCoupon(trx, customerId, opts.now)
    return { card, issued: true }
  }
  throw new Error(`no free member-card number after ${MAX_TRIES} tries`)
}

async function giveWelcomeCoupon(trx: Db, customerId: string, now: Date): Promise<void> {
  const expiresAt = new Date(now.getTime() + WELCOME_COUPON.validDays * 86_400_000)
  for (let i = 0; i < MAX_TRIES; i++) {
    const inserted = await insertCouponIfCodeFree(trx, {
      code: randomCouponCode(),
      customerId,
      kind: WELCOME_COUPON.kind,
      title: WELCOME_COUPON.title,
      discountYen: WELCOME_COUPON.discountYen,
      expiresAt,
    })
    if (inserted) return
  }
  throw new Error(`no free coupon code after ${MAX_TRIES} tries`)
}

type CardDeps = Pick<Deps, 'env' | 'clock' | 'log'>

/** Ensures the card exists, then builds the member-card Flex message for it. */
export async function memberCardMessage(
  deps: CardDeps,
  trx: Db,
  customerId: string,
): Promise<messagingApi.FlexMessage> {
  const now = deps.clock.now()
  const { card } = await ensureMemberCard(trx, customerId, cardIssueOptions(deps))
  const holder = await findCardHolder(trx, customerId)
  const coupon = await findUsableCoupon(trx, customerId, now)
  // Through the transaction: embedded PGlite has one connection, which the transaction holds.
  const token = await signCardToken(
    trx,
    card.id,
    new Date(now.getTime() + CARD_TOKEN_TTL_SECONDS * 1000),
  )
  const barcodeUrl = barcodeImageUrl(deps.env, token)
  const { altText, contents } = renderFlexTemplate('member-card', {
    displayName: holder.display_name?.trim() || 'Member',
    tier: holder.tier.charAt(0).toUpperCase() + holder.tier.slice(1),
    points: `${holder.points.toLocaleString('en-US')} pt`,
    couponTitle: coupon?.title ?? '現在のクーポンはありません / No coupons right now',
    couponCode: coupon?.code ?? '-',
    cardNumber: card.value,
    barcodeUrl,
  })
  if (!lineLoadsImageUrl(deps.env, barcodeUrl) && contents.type === 'bubble') {
    // LINE would refuse the whole message over an http image: send the card number alone.
    warnNoHttpsOnce(deps)
    delete contents.hero
  }
  return { type: 'flex', altText, contents }
}

let warned = false
function warnNoHttpsOnce(deps: CardDeps): void {
  if (warned) return
  warned = true
  deps.log.warn(
    'PUBLIC_BASE_URL is not an https URL: member cards are sent without the barcode image',
  )
}
