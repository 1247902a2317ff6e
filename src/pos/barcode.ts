import { isValidEan13 } from '../cards/ean13.ts'
import { digitsOf } from '../customers/identity-values.ts'

/** What a scanned barcode looks like before any lookup. */
export type BarcodeShape = 'member_card' | 'misread_member_card' | 'other'

/**
 * A scanned or typed barcode (already read by readCode) and what it looks like: 13 digits with
 * our prefix are a member card, also typed with spaces or dashes between them, and then the code
 * is those digits; a wrong GS1 check digit means a misread. Anything else is kept as it is.
 */
export function readBarcode(
  barcode: string,
  memberCardPrefix: string,
): { code: string; shape: BarcodeShape } {
  const digits = digitsOf(barcode)
  if (digits?.length !== 13 || !digits.startsWith(memberCardPrefix)) {
    return { code: barcode, shape: 'other' }
  }
  return { code: digits, shape: isValidEan13(digits) ? 'member_card' : 'misread_member_card' }
}
