import { isValidEan13 } from '../cards/ean13.ts'
import { digitsOf, readCode } from '../customers/identity-values.ts'

/**
 * What a scanned barcode looks like before any lookup: `ean13` is a valid EAN-13 outside our
 * prefix, a member card issued before MEMBER_CARD_PREFIX changed, or else a legacy card (or a
 * coupon, or no card of ours at all: a product's barcode).
 */
export type BarcodeShape = 'member_card' | 'misread_member_card' | 'ean13' | 'other'

/** A barcode as a register reads it (readBarcode). */
export type ReadBarcode = {
  /**
   * What it is looked up by: a member card's 13 digits (any valid EAN-13's), else `read` in upper
   * case, as a coupon code (upper-case base32, however it was typed; a legacy card is looked up
   * by `read`).
   */
  code: string
  shape: BarcodeShape
  /** readCode's reading, spaces and hyphens inside kept: a legacy card's number. */
  read: string
  /** As it arrived, trimmed only: the form older erasures hashed (tombstonesOf). */
  typed: string
}

/**
 * A scanned or typed barcode and what it looks like, once read by readCode: 13 digits with our
 * prefix are a member card, also typed with spaces or dashes between them, and then the code is
 * those digits; a wrong GS1 check digit means a misread. 13 digits outside the prefix with a
 * right check digit may be a card issued under an earlier prefix (`ean13`: its code is its
 * digits too); the prefix is what new cards get, and what tells a misread from another number.
 * Anything else is kept as it is read.
 */
export function readBarcode(barcode: string, memberCardPrefix: string): ReadBarcode {
  const typed = barcode.trim()
  const read = readCode(barcode)
  const digits = digitsOf(read)
  if (digits?.length === 13 && digits.startsWith(memberCardPrefix)) {
    const shape = isValidEan13(digits) ? 'member_card' : 'misread_member_card'
    return { code: digits, shape, read, typed }
  }
  if (digits?.length === 13 && isValidEan13(digits)) {
    return { code: digits, shape: 'ean13', read, typed }
  }
  return { code: read.toUpperCase(), shape: 'other', read, typed }
}

/**
 * 13 digits with our prefix, as they are (no spaces or hyphens inside): a register reads them as
 * a member card (or its misread), never as a legacy card, so none is bound as one (linkBarcode,
 * the customer import's legacy_card). With spaces or hyphens inside ("29 0012 3456 789") the
 * number is an old plastic card's own, found as typed when no member card has its digits.
 */
export function readAsMemberCardOnly({ shape, code, read }: ReadBarcode): boolean {
  return (shape === 'member_card' || shape === 'misread_member_card') && code === read
}
