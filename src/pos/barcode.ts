import { isValidEan13 } from '../cards/ean13.ts'
import { digitsOf, readCode } from '../customers/identity-values.ts'

/** What a scanned barcode looks like before any lookup. */
export type BarcodeShape = 'member_card' | 'misread_member_card' | 'other'

/** A barcode as a register reads it (readBarcode). */
export type ReadBarcode = {
  /**
   * What it is looked up by: a member card's 13 digits, else `read` in upper case, as a coupon
   * code (upper-case base32, however it was typed; a legacy card is looked up by `read`).
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
 * those digits; a wrong GS1 check digit means a misread. Anything else is kept as it is read.
 */
export function readBarcode(barcode: string, memberCardPrefix: string): ReadBarcode {
  const typed = barcode.trim()
  const read = readCode(barcode)
  const digits = digitsOf(read)
  if (digits?.length !== 13 || !digits.startsWith(memberCardPrefix)) {
    return { code: read.toUpperCase(), shape: 'other', read, typed }
  }
  const shape = isValidEan13(digits) ? 'member_card' : 'misread_member_card'
  return { code: digits, shape, read, typed }
}
