import type { RawBuilder } from 'kysely'
import { MAX_MERGE_HOPS, MergeChainTooLong } from '../customers/surviving-customer.repo.ts'
import { tombstonesOf } from '../customers/tombstones.ts'
import type { Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import type { BarcodeShape, ReadBarcode } from './barcode.ts'
import {
  type CardOwner,
  cardOwnerStart,
  findCardOwners,
  findCouponOwner,
  findCustomerLink,
} from './pos.repo.ts'

// Who a scanned barcode names: a member card, a legacy card or a coupon, followed through merges;
// the scan's refusals of the barcode itself (404, 410, 422) are said here.

/** What a scanned barcode was found to be: a coupon names its owner but proves less (scan). */
export type ScanVia = 'member_card' | 'legacy_card' | 'coupon'
type Resolved = { customerId: string; via: ScanVia }

export const UNKNOWN =
  'no member card, legacy card or coupon has this number: check the number printed under ' +
  'the barcode, or ask the shopper to show the member card in LINE'
export const ERASED = "this member's data was erased on request; the card is no longer valid"
export const MISREAD = 'misread barcode, scan again'
/** A refusal of the scanned barcode (422, 404, 410): its body names the field. */
export function barcodeError(
  code: 'UNPROCESSABLE' | 'NOT_FOUND' | 'GONE',
  message: string,
): AppError {
  return new AppError(code, message, { details: [{ field: 'barcode', message }] })
}

/**
 * Follows merges to the surviving customer; an erased one is GONE. A chain longer than
 * MAX_MERGE_HOPS is MergeChainTooLong, as in every walk of merges.
 */
async function survivorOf(
  db: Db,
  start: Pick<CardOwner, 'customer_id' | 'erased_at' | 'merged_into_id'>,
) {
  let row: typeof start | undefined = start
  for (let hop = 0; hop <= MAX_MERGE_HOPS && row; hop++) {
    if (row.erased_at) throw barcodeError('GONE', ERASED)
    if (!row.merged_into_id) return row.customer_id
    row = await findCustomerLink(db, row.merged_into_id)
  }
  if (row) throw new MergeChainTooLong()
  throw barcodeError('NOT_FOUND', UNKNOWN)
}

/**
 * The card identities a barcode may be (`codes`, best first) and the tombstones they may have
 * left, of each code as read (a legacy card's in each width it may have been stored in) and of
 * the barcode as typed (tombstonesOf). A number whose spaces or hyphens hide 13 digits with our
 * prefix may be an old plastic card's own number ("29 0012 3456 789", bound before such numbers
 * were read as member cards): it is asked as typed too, after the member card, before a 422 or
 * 404, in the same statement. Misread without such spaces: 422. A valid EAN-13 outside the
 * prefix (`ean13`) is asked as a member card too (one issued before MEMBER_CARD_PREFIX changed),
 * then as a legacy card.
 */
function cardLookup({ code, shape, read, typed }: ReadBarcode) {
  const asLegacy = shape !== 'other' && read !== code ? [read] : []
  const codes =
    shape === 'other' ? [read] : shape === 'misread_member_card' ? asLegacy : [code, ...asLegacy]
  if (codes.length === 0) throw barcodeError('UNPROCESSABLE', MISREAD)
  const kinds = isCardNumber(shape) ? ['member_card', 'legacy_card'] : ['legacy_card']
  const tombstones = kinds.flatMap((kind) => codes.flatMap((c) => tombstonesOf(kind, c, typed)))
  return { kinds, codes, values: [...new Set([...codes, ...tombstones])] }
}

/** A valid EAN-13, in our prefix or not: a member card may have it (the prefix may have changed). */
const isCardNumber = (shape: BarcodeShape) => shape === 'member_card' || shape === 'ean13'

/** A coupon code may be any number but one in our prefix (a member card's, or its misread). */
const mayBeCoupon = (shape: BarcodeShape) => shape === 'other' || shape === 'ean13'

/**
 * The barcode's customer as a `start` (cardOwnerStart) for a statement that follows merges; no
 * row for a number no live card or coupon holds (unknown, an erased card's tombstone, misread).
 */
export function barcodeStart(scanned: ReadBarcode): RawBuilder<unknown> {
  const { kinds, codes, values } = cardLookup(scanned)
  const withCoupon = mayBeCoupon(scanned.shape)
  return cardOwnerStart({ barcode: scanned.code, codes, kinds, values, withCoupon })
}

/** Barcode → customer: member card, else legacy card, else coupon code; tombstones → 410. */
export async function resolveBarcode(db: Db, scanned: ReadBarcode): Promise<Resolved> {
  const { kinds, codes, values } = cardLookup(scanned)
  const owners = await findCardOwners(db, kinds, values)
  const rank = (o: { kind: string; value: string }) =>
    o.kind === 'member_card' ? 0 : 1 + codes.indexOf(o.value)
  const owner = owners.filter((o) => codes.includes(o.value)).sort((a, b) => rank(a) - rank(b))[0]
  if (owner) {
    const via = owner.kind === 'member_card' ? 'member_card' : 'legacy_card'
    return { customerId: await survivorOf(db, owner), via }
  }
  if (owners.length > 0) throw barcodeError('GONE', ERASED)
  const couponOwner = mayBeCoupon(scanned.shape)
    ? await findCouponOwner(db, scanned.code)
    : undefined
  if (couponOwner) return { customerId: await survivorOf(db, couponOwner), via: 'coupon' }
  if (scanned.shape === 'misread_member_card') throw barcodeError('UNPROCESSABLE', MISREAD)
  throw barcodeError('NOT_FOUND', UNKNOWN)
}
