import { isValidEan13 } from '../cards/ean13.ts'

/** What a scanned barcode looks like before any lookup. */
export type BarcodeShape = 'member_card' | 'misread_member_card' | 'other'

/** 13 digits with our prefix are member cards; a wrong GS1 check digit means a misread. */
export function classifyBarcode(barcode: string, memberCardPrefix: string): BarcodeShape {
  if (!/^\d{13}$/.test(barcode) || !barcode.startsWith(memberCardPrefix)) return 'other'
  return isValidEan13(barcode) ? 'member_card' : 'misread_member_card'
}
