import type { Transaction } from 'kysely'
import { lockSurvivorWith } from '../customers/surviving-customer.service.ts'
import { clipToLength } from '../flex/flex-limits.ts'
import { fetchWelcomeProfile } from '../identity/profile.service.ts'
import type { Database, DB, Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import { CARD_TOKEN_TTL_SECONDS, signCardToken } from './card-token.ts'
import { barcodeImageUrl, lineLoadsImageUrl } from './card-url.ts'
import {
  findCardHolder,
  findMemberCardOf,
  findUsableCoupon,
  insertCouponIfCodeFree,
  insertMemberCards,
  lockCustomerForCard,
  lockCustomersForCards,
} from './cards.repo.ts'
import { randomCouponCode, WELCOME_COUPON } from './coupon.ts'
import { randomCardNumber } from './ean13.ts'

export type MemberCard = { id: string; value: string }

export type IssueOptions = {
  /** `env.MEMBER_CARD_PREFIX`. */
  prefix: string
  now: Date
  /** Give a welcome coupon with a newly issued card (default true; an unlink says no). */
  welcomeCoupon?: boolean
  /** Draws a card number (default randomCardNumber); a test's makes draws collide. */
  drawNumber?: (prefix: string) => string
}

const MAX_TRIES = 10

/** Issue options from the running configuration. */
export function cardIssueOptions(deps: Pick<Deps, 'env' | 'clock'>): IssueOptions {
  return { prefix: deps.env.MEMBER_CARD_PREFIX, now: deps.clock.now() }
}

/**
 * The customer's member card, issued once: concurrent callers wait on the customer row, and a
 * number already taken (e.g. by an imported card) is skipped. A new card comes with the welcome
 * coupon. A customer erased on request (`id` may lead there through merges) gets none: GONE.
 * Runs inside the caller's transaction.
 */
export async function ensureMemberCard(
  trx: Transaction<DB>,
  id: string,
  opts: IssueOptions,
): Promise<{ card: MemberCard; issued: boolean; customerId: string }> {
  const customerId = await lockCardHolder(trx, id)
  const existing = await findMemberCardOf(trx, customerId)
  if (existing) return { card: existing, issued: false, customerId }
  const cards = await insertNewCards(trx, [customerId], opts.prefix, opts.drawNumber)
  const card = cards.get(customerId)
  if (!card) throw new Error('member card not inserted')
  if (opts.welcomeCoupon !== false) await giveWelcomeCoupon(trx, customerId, opts.now)
  return { card, issued: true, customerId }
}

/**
 * The number of the customer's member card (the oldest, should a merge have left two), or null
 * when they have none: what a register records their receipts against.
 */
export async function memberCardNumberOf(db: Db, customerId: string): Promise<string | null> {
  return (await findMemberCardOf(db, customerId))?.value ?? null
}

/**
 * A member card for each of these customers that has none, as the customer import gives them:
 * without the welcome coupon (a card from an import is no welcome; the coupon comes with the
 * friend add, which issues the LINE friend's own card). Set-based, for a batch of rows at once:
 * one transaction locks them all (in id order), draws their numbers and inserts their cards. A
 * customer merged or erased since its row was written gets none here (a re-run of the import
 * finds the survivor). Returns how many cards were issued.
 */
export async function issueMissingMemberCards(
  db: Database,
  customerIds: string[],
  prefix: string,
): Promise<number> {
  const ids = [...new Set(customerIds)]
  if (ids.length === 0) return 0
  return db.transaction().execute(async (trx) => {
    const locked = await lockCustomersForCards(trx, ids)
    const lacking = locked
      .filter((c) => !c.merged_into_id && !c.erased_at && !c.has_card)
      .map((c) => c.id)
    return (await insertNewCards(trx, lacking, prefix)).size
  })
}

/**
 * Inserts a card with a number drawn at random (randomCardNumber) for each customer (locked by
 * the caller, holding none): a number someone already has (an imported card in our prefix, a
 * card issued before, an erased member's) or drawn twice in the batch is skipped and another drawn
 * for its customer, up to MAX_TRIES draws each; then it throws and the caller's transaction
 * writes nothing. In the prefix's 10^10 numbers (10^9 with 3 digits) a taken draw is rare until
 * millions are issued.
 */
async function insertNewCards(
  trx: Db,
  customerIds: string[],
  prefix: string,
  draw: (prefix: string) => string = randomCardNumber,
): Promise<Map<string, MemberCard>> {
  const issued = new Map<string, MemberCard>()
  let lacking = customerIds
  for (let i = 0; i < MAX_TRIES && lacking.length > 0; i++) {
    const cards = lacking.map((customerId) => ({ customerId, cardNumber: draw(prefix) }))
    const rows = await insertMemberCards(trx, cards)
    for (const row of rows) issued.set(row.customer_id, { id: row.id, value: row.value })
    lacking = lacking.filter((id) => !issued.has(id))
  }
  if (lacking.length > 0) throw new Error(`no free member-card number after ${MAX_TRIES} tries`)
  return issued
}

/**
 * Locks the customer that holds `id`'s data now and returns its id. A caller's id read before a
 * merge committed (a delivery's customer) leads to the survivor: a card issued to the merged
 * row would be one the person never sees again, with its welcome coupon. The chain is followed
 * before the lock (lockSurvivorWith), so no merged row is held while a merge of its survivor
 * re-points it. An erased customer (one erased while a delivery to them was under way, or the
 * survivor of a merge erased since) is GONE: no card, no coupon, nothing in their name again.
 */
async function lockCardHolder(trx: Transaction<DB>, id: string): Promise<string> {
  const locked = await lockSurvivorWith(trx, id, (found) => lockCustomerForCard(trx, found))
  if (!locked) throw new Error('customer not found')
  if (locked.erased_at) throw new AppError('GONE', 'this customer was erased on request')
  return locked.id
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

type CardDeps = Pick<Deps, 'db' | 'env' | 'clock' | 'line' | 'log' | 'lineStandIn'>

/**
 * The member-card template's variables, at send time (loader of `member-card`): the card (issued
 * now if missing), tier, points, the first usable coupon and a fresh signed barcode URL. A welcome
 * card first fetches a new friend's profile (bounded wait), so it greets them by name.
 */
export async function memberCardVars(
  deps: CardDeps,
  delivery: { customerId: string; vars?: Record<string, unknown> },
): Promise<Record<string, unknown>> {
  const welcome = delivery.vars?.welcome
  const greeting = welcome === 'new' || welcome === 'back' ? GREETINGS[welcome] : ''
  // Before the transaction: the LINE call holds no connection.
  if (greeting) await fetchWelcomeProfile(deps, delivery.customerId)
  const now = deps.clock.now()
  return deps.db.transaction().execute(async (trx) => {
    // The customer who holds the card now: a merge may have committed since the delivery was read.
    const { card, customerId } = await ensureMemberCard(
      trx,
      delivery.customerId,
      cardIssueOptions(deps),
    )
    const holder = await findCardHolder(trx, customerId)
    const coupon = await findUsableCoupon(trx, customerId, now)
    // Through the transaction: embedded PGlite has one connection, which the transaction holds.
    const token = await signCardToken(
      trx,
      card.id,
      new Date(now.getTime() + CARD_TOKEN_TTL_SECONDS * 1000),
    )
    const url = barcodeImageUrl(deps.env, token)
    return {
      greeting,
      // The card takes 100 characters; an imported name may have 200.
      displayName: clipToLength(holder.display_name?.trim() || 'Member', 100),
      tier: holder.tier.charAt(0).toUpperCase() + holder.tier.slice(1),
      points: `${holder.points.toLocaleString('en-US')} pt`,
      couponTitle: coupon?.title ?? '現在のクーポンはありません / No coupons right now',
      couponCode: coupon?.code ?? '-',
      cardNumber: card.value,
      // LINE refuses a whole message over an http image: then the card goes without it.
      barcodeUrl: lineLoadsImageUrl(deps, url) ? url : undefined,
    }
  })
}

/** The first line of a welcome card's notification (its alt text). */
const GREETINGS = {
  new: '友だち追加ありがとうございます！会員証をお届けします。\nThank you for adding us as a friend! Here is your member card.\n',
  back: 'おかえりなさい！会員証はこちらです。\nWelcome back! Here is your member card.\n',
} as const

/** The member card as a delivery's content (rendered when sent); `welcome` greets a friend. */
export function memberCardContent(welcome?: 'new' | 'back') {
  return { templateId: 'member-card', vars: welcome ? { welcome } : {} }
}
