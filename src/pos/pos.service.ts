import { type RawBuilder, sql, type Transaction } from 'kysely'
import { attachIdentity } from '../customers/merge.service.ts'
import type { DB, Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError, invalidField } from '../platform/errors.ts'
import { runAgainIfAborted } from '../platform/run-again.ts'
import { CustomerKeptChanging, recordPurchaseFor } from '../purchases/purchase.service.ts'
import { enqueueFollowUp } from '../purchases/purchase-follow-up.service.ts'
import { couponScanRefusal, type PurchaseFields } from '../purchases/purchase-refusal.ts'
import { type VoidedPurchase, voidPurchase } from '../purchases/void-purchase.service.ts'
import { relinkCustomersSoon } from '../richmenu/richmenu-link.service.ts'
import { type ReadBarcode, readAsMemberCardOnly, readBarcode } from './barcode.ts'
import {
  barcodeError,
  barcodeStart,
  ERASED,
  MISREAD,
  resolveBarcode,
  type ScanVia,
  UNKNOWN,
} from './barcode-owner.ts'
import { memberSummary } from './member-summary.ts'
import { findCardOwners, findCouponOwner } from './pos.repo.ts'
import type { Receipt, ScanBody, ScanResponse } from './pos.schemas.ts'
import { replayOf } from './receipt-replay.ts'
import { scannedMember } from './scanned-member.ts'

/**
 * queues and log queue a receipt's follow-up; without them (the staff page's deps) the row waits
 * for the sweeper.
 */
export type PosDeps = Pick<Deps, 'db' | 'env' | 'queues' | 'log'>
type FollowUp = { id: string; sendAfter: Date } | undefined
export type PosStore = { id: string; code: string }

const BUSY =
  "busy: this member's record is being changed by another task (an import, an account link, " +
  'other receipts) right now; scan again'

const MEMBER_CARD_LINK = 'a member card cannot be linked as a legacy card'

/** A scan that lost to another change to its customers each time it ran (503). */
const busy = (cause: unknown) => new AppError('UNAVAILABLE', BUSY, { cause })

/**
 * What a scan runs again (runAgainIfAborted): besides what Postgres aborted, a receipt whose
 * customer kept changing under it (other receipts on a shared card), after a short random pause.
 */
const runAgain = { busy, again: (error: unknown) => error instanceof CustomerKeptChanging }

/**
 * The register scan: who the member is and, with a receipt, the purchase recorded once per
 * (store, receipt id). Everything happens in one transaction; any error writes nothing. One
 * Postgres aborted (a deadlock with the customer import or an account link), or whose customer
 * kept changing under it (CustomerKeptChanging: other receipts on one card at once), runs again,
 * up to 3 times in all, and then answers 503 "busy, scan again"; the follow-up and menus are
 * queued once, after the commit.
 * A coupon code names its owner but is no proof of who is at the register (shoppers pass coupons
 * on): a member found by one is shown with that coupon alone, without name or points
 * (couponScanAnswer), and the receipt
 * may use it and nothing else of theirs, not their points nor another coupon (a 403 naming the
 * field: couponScanRefusal).
 */
export async function scan(
  deps: PosDeps,
  store: PosStore,
  scanned: ScanBody,
): Promise<ScanResponse> {
  return (await scanMember(deps, store, scanned)).answer
}

/** scan, also saying how the barcode named the member (the staff page holds on to a card). */
export async function scanMember(
  deps: PosDeps,
  store: PosStore,
  scanned: ScanBody,
): Promise<{ answer: ScanResponse; via: ScanVia }> {
  // A member card typed with spaces or dashes is its digits from here on (replays compare them).
  const read = readBarcode(scanned.barcode, deps.env.MEMBER_CARD_PREFIX)
  const body = { ...scanned, barcode: read.code }
  if (!body.receipt && !body.linkBarcode) {
    const { customer, via } = await scannedMember(deps.db, read)
    return { answer: couponScanAnswer({ customer }, via, read.code), via }
  }
  if (!body.linkBarcode) {
    // One statement, atomic on its own: no transaction needed; run again if Postgres aborts it.
    const start = barcodeStart(read)
    const record = () =>
      runAgainIfAborted(() => recordReceipt(deps.db, deps, store, body, start), runAgain)
    // Found no one: resolveBarcode says why (404, 410, 422), or finds the card bound since the
    // statement's snapshot (an import, an account link committing in between): recorded then.
    let recorded = await record()
    if (!recorded) {
      await resolveBarcode(deps.db, read)
      recorded = await record()
    }
    if (recorded) {
      // The register doesn't wait for Redis: the row is the truth (the sweeper queues it if this
      // is lost), and the follow-up is due an hour from now.
      void enqueueFollowUp(deps, recorded.followUp)
      if (recorded.segmentInputsChanged) relinkMenusAfter(deps, recorded.answer)
      const { via } = recorded
      return { answer: couponScanAnswer(recorded.answer, via, read.code), via }
    }
    // Bound and gone again between the two runs: no card has the number now.
    throw barcodeError('NOT_FOUND', UNKNOWN)
  }
  const linked = await runAgainIfAborted(
    () => deps.db.transaction().execute((trx) => linkCardAndRecord(trx, deps, store, body, read)),
    runAgain,
  )
  void enqueueFollowUp(deps, linked.followUp) // after the commit; never waits on Redis
  // A link may have merged two customers (or attached the card's waiting purchases): their menus
  // are checked whatever the purchase did, with no receipt or a replayed one too.
  relinkMenusAfter(deps, linked.answer, { always: true })
  return { answer: linked.answer, via: linked.via }
}

/**
 * The answer to a scan of a coupon (`via`) shows that coupon alone of its owner's: the codes of
 * the others would let whoever holds one coupon use them all. Nor does it show the owner's name
 * or points balance (the customer's, nor the purchase's balance after the sale): whoever holds
 * the coupon may not be its owner.
 */
function couponScanAnswer(answer: ScanResponse, via: ScanVia, code: string): ScanResponse {
  if (via !== 'coupon') return answer
  const coupons = answer.customer.coupons.filter((coupon) => coupon.code === code)
  const customer = { ...answer.customer, displayName: null, points: null, coupons }
  const purchase = answer.purchase && { ...answer.purchase, points: null }
  return { ...answer, customer, ...(purchase ? { purchase } : {}) }
}

/**
 * The scan's legacy card (`linkBarcode`) given to the member the barcode names, which may merge
 * its holder into them, and the receipt recorded, in `trx`.
 */
async function linkCardAndRecord(
  trx: Transaction<DB>,
  deps: PosDeps,
  store: PosStore,
  body: ScanBody,
  read: ReadBarcode,
): Promise<{ answer: ScanResponse; followUp?: FollowUp; via: ScanVia }> {
  const resolved = await resolveBarcode(trx, read)
  // A coupon code names its owner but is no proof of who is at the register: shoppers pass
  // coupons on, and linking would merge the card holder (points, purchases, email) into them.
  if (resolved.via === 'coupon') {
    throw invalidField(
      'barcode',
      'scan the member card to link a legacy card; a coupon does not identify its holder',
    )
  }
  const link = readBarcode(body.linkBarcode ?? '', deps.env.MEMBER_CARD_PREFIX)
  // As the customer import checks a legacy_card: 13 digits with our prefix as they are, a member
  // card or its misread, are never a legacy card; with spaces or hyphens inside they are an old
  // plastic card's own number ("29 0012 3456 789"), found as typed when no member card has them.
  if (readAsMemberCardOnly(link)) {
    if (link.shape === 'misread_member_card') {
      throw invalidField('linkBarcode', MISREAD, 'UNPROCESSABLE')
    }
    throw invalidField('linkBarcode', MEMBER_CARD_LINK)
  }
  // Digits a member card has (spaced, or issued under an earlier prefix) find that card first.
  if (link.shape !== 'other' && (await findCardOwners(trx, ['member_card'], [link.code])).length) {
    throw invalidField('linkBarcode', MEMBER_CARD_LINK)
  }
  // Bound as a legacy card, a coupon code would name the card's holder from then on (cards are
  // looked up before coupons), and be a coupon no longer.
  if (await findCouponOwner(trx, link.code)) {
    throw invalidField('linkBarcode', 'a coupon cannot be linked as a legacy card')
  }
  // As it came: attachIdentity reads it, and asks the tombstone of this form too.
  const attached = await attachIdentity(trx, resolved.customerId, 'legacy_card', link.typed, {
    env: deps.env,
    reason: 'scan',
  })
  const customerId = attached.customerId
  const via = resolved.via
  if (!body.receipt) return { answer: { customer: await memberSummary(trx, customerId) }, via }
  const start = sql`select ${customerId}::uuid as customer_id, ${resolved.via}::text as via,
    null::text as coupon`
  const recorded = await recordReceipt(trx, deps, store, body, start)
  if (!recorded) throw new AppError('NOT_FOUND', 'no customer with this id')
  return recorded
}

/**
 * A first purchase makes its customer a member, and a purchase may move their tier (a link may
 * merge them): their LINE friends' menus follow, queued after the commit without making the
 * register wait. Other purchases change no segment and cost nothing here.
 */
function relinkMenusAfter(deps: PosDeps, answer: ScanResponse, opts?: { always: true }): void {
  const purchase = answer.purchase
  const fresh = purchase && !purchase.replayed
  if (!fresh && !opts?.always) return
  const cause = fresh ? `purchase-${purchase.id}` : `card-link-${Date.now()}`
  void relinkCustomersSoon(deps, [answer.customer.id], cause)
}

/**
 * Records the receipt for the customer `start` finds (with its follow-up, to queue once
 * committed); undefined when it finds no one.
 */
async function recordReceipt(
  db: Db,
  deps: PosDeps,
  store: PosStore,
  body: ScanBody,
  start: RawBuilder<unknown>,
): Promise<
  | { answer: ScanResponse; followUp?: FollowUp; segmentInputsChanged?: boolean; via: ScanVia }
  | undefined
> {
  const receipt = body.receipt
  if (!receipt) throw new Error('recordReceipt needs a receipt')
  const recorded = await recordPurchaseFor(
    db,
    deps.env,
    {
      channel: 'store',
      source: store.code,
      externalId: receipt.id,
      storeId: store.id,
      registerId: body.registerId ?? null,
      customerId: null,
      purchasedAt: receipt.purchasedAt,
      lines: receipt.lines,
      total: receipt.total,
      ...couponsAndPoints(receipt),
    },
    {
      start,
      withResult: true,
      followUpDelaySeconds: deps.env.POST_PURCHASE_DELAY_SECONDS,
      fields: receiptFieldNames(receipt),
    },
  ).catch((error: unknown) => {
    // The customer `start` found is the barcode's (a coupon of an erased member still names
    // them): the register gets the lookup's 410, not the purchase service's.
    if (error instanceof AppError && error.code === 'GONE') throw barcodeError('GONE', ERASED)
    throw error
  })
  if (recorded.notFound) return undefined
  // `start` always names how it found the customer (barcodeStart, linkCardAndRecord).
  const via = recorded.via as ScanVia
  if (!recorded.created) {
    const scannedCoupon = via === 'coupon' ? body.barcode : null
    // A coupon scan sending again a sale recorded with points or other coupons would claim them.
    const refused =
      scannedCoupon &&
      couponScanRefusal(scannedCoupon, couponsAndPoints(receipt), receiptFieldNames(receipt))
    if (refused) throw refused
    const answer = await replayOf(
      db,
      recorded.purchaseId,
      receipt,
      recorded.customerId,
      scannedCoupon,
    )
    return { answer, via }
  }
  return {
    answer: recorded.result as ScanResponse,
    followUp: recorded.followUp,
    segmentInputsChanged: recorded.segmentInputsChanged,
    via,
  }
}

/** What a receipt uses of its member's: points, and coupons each once. */
function couponsAndPoints(receipt: Receipt) {
  return { pointsUsed: receipt.pointsUsed, couponCodes: [...new Set(receipt.couponsUsed)] }
}

/**
 * The body's fields a refusal of its points or coupons names: a coupon by its place in
 * `receipt.couponsUsed` (as read), else the scanned barcode it came as.
 */
function receiptFieldNames(receipt: Receipt): PurchaseFields {
  return {
    pointsUsed: 'receipt.pointsUsed',
    coupon: (code) => {
      const at = receipt.couponsUsed.indexOf(code)
      return at >= 0 ? `receipt.couponsUsed.${at}` : 'barcode'
    },
  }
}

const UNKNOWN_RECEIPT =
  'no receipt with this number was recorded at this store: check the receipt number, or whether ' +
  'it was recorded at another store or without scanning a member card'

/**
 * What a void answers: what it took back, and the member's id and tier after it, never their
 * points balance (null, as a coupon scan's answer has it). A void names a receipt, not a card: it
 * proves no more than a coupon does of who is at the register, and a receipt recorded through a
 * coupon scan (which showed no balance) could otherwise be voided to read it, again and again (the
 * void gives the coupon back). Scan the member card for the balance after it.
 */
export type VoidAnswer = {
  purchase: VoidedPurchase['purchase']
  customer: { id: string; tier: string; points: null } | null
}

/** Voids a receipt of this store (see voidPurchase); unknown → 404. */
export async function voidReceipt(
  deps: PosDeps,
  store: PosStore,
  receiptId: string,
): Promise<VoidAnswer> {
  const voided = await voidPurchase(deps, {
    channel: 'store',
    source: store.code,
    externalId: receiptId,
  })
  if (!voided) throw new AppError('NOT_FOUND', UNKNOWN_RECEIPT)
  // The tier may have dropped: the customer's menus follow (a repeat finds nothing to change).
  if (voided.customer) {
    void relinkCustomersSoon(deps, [voided.customer.id], `void-${voided.purchase.id}`)
  }
  const customer = voided.customer && { ...voided.customer, points: null }
  return { purchase: voided.purchase, customer }
}
