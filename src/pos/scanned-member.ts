import { MergeChainTooLong } from '../customers/surviving-customer.repo.ts'
import type { Db } from '../platform/db.ts'
import type { ReadBarcode } from './barcode.ts'
import {
  barcodeError,
  barcodeStart,
  ERASED,
  resolveBarcode,
  type ScanVia,
} from './barcode-owner.ts'
import { memberSummary, toSummary } from './member-summary.ts'
import { findScannedMember } from './pos.repo.ts'
import type { ScanResponse } from './pos.schemas.ts'

/**
 * A scan without a receipt: the member the barcode names, followed through merges, their summary
 * and how the barcode named them, in one statement (findScannedMember), answered as resolveBarcode
 * and memberSummary would: an erased customer on the way is 410, a chain longer than
 * MAX_MERGE_HOPS (still merged at its end) MergeChainTooLong, as every walk of merges. When it
 * finds no one, resolveBarcode says why (an erased card's tombstone 410, a misread 422, else 404),
 * or finds the card bound in between.
 */
export async function scannedMember(
  db: Db,
  scanned: ReadBarcode,
): Promise<{ customer: ScanResponse['customer']; via: ScanVia }> {
  const row = await findScannedMember(db, barcodeStart(scanned))
  if (!row) {
    const { customerId, via } = await resolveBarcode(db, scanned)
    return { customer: await memberSummary(db, customerId), via }
  }
  if (row.erased) throw barcodeError('GONE', ERASED)
  if (row.merged) throw new MergeChainTooLong()
  return { customer: toSummary(row), via: row.via }
}
