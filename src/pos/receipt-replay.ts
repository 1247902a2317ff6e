import { findCurrentCustomer } from '../customers/surviving-customer.service.ts'
import type { Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { memberSummary } from './member-summary.ts'
import { findPurchaseResult } from './pos.repo.ts'
import type { Receipt, ScanResponse } from './pos.schemas.ts'

/**
 * The answer given the first time, marked as a replay (rebuilt if none was stored). A receipt id
 * that comes back with another member's card or another total is not a replay but a second sale
 * under a used number: 409, and the first member's data stays at the register that recorded it.
 * So is one that claims points or coupons (listed, or scanned as the barcode) the sale did not
 * use: answered as a replay, the register would give a discount nothing paid for. A retry that
 * leaves them out gets the first answer, which says what was used. (A voided sale gave its
 * coupons back: only its points are compared.)
 */
export async function replayOf(
  trx: Db,
  purchaseId: string,
  receipt: Receipt,
  scannedCustomerId: string | null | undefined,
  scannedCoupon: string | null,
): Promise<ScanResponse> {
  const row = await findPurchaseResult(trx, purchaseId)
  if (row.total !== receipt.total) {
    throw new AppError(
      'CONFLICT',
      `receipt ${receipt.id} was already recorded with total ${row.total}; a different sale ` +
        'needs its own receipt id',
      { details: [{ field: 'receipt.id', message: 'already used for another sale' }] },
    )
  }
  if (row.customer_id !== scannedCustomerId && !(await sameCustomer(trx, row, scannedCustomerId))) {
    throw new AppError(
      'CONFLICT',
      `receipt ${receipt.id} was already recorded for another member; a different sale needs ` +
        'its own receipt id',
      { details: [{ field: 'receipt.id', message: 'already used for another member' }] },
    )
  }
  if (receipt.pointsUsed > 0 && receipt.pointsUsed !== row.points_used) {
    throw new AppError(
      'CONFLICT',
      `receipt ${receipt.id} was already recorded with ${row.points_used} points used; a ` +
        'different sale needs its own receipt id',
      { details: [{ field: 'receipt.pointsUsed', message: 'differs from the recorded sale' }] },
    )
  }
  const listed = [...receipt.couponsUsed, ...(scannedCoupon ? [scannedCoupon] : [])]
  const usedCodes = [...row.coupons_used].sort()
  if (!row.voided_at && listed.some((code) => !usedCodes.includes(code))) {
    const used = usedCodes.length > 0 ? `coupons ${usedCodes.join(', ')}` : 'no coupon'
    throw new AppError(
      'CONFLICT',
      `receipt ${receipt.id} was already recorded with ${used}; a different sale needs its own ` +
        'receipt id',
      { details: [{ field: 'receipt.couponsUsed', message: 'differs from the recorded sale' }] },
    )
  }
  // A voided purchase keeps what the void did next to the answer (`void`): not the register's.
  const { void: _void, ...stored } = (row.result ?? {}) as ScanResponse & { void?: unknown }
  if (stored.purchase) return { ...stored, purchase: { ...stored.purchase, replayed: true } }
  if (!row.customer_id) throw new AppError('CONFLICT', 'this receipt was recorded without a member')
  const customer = await memberSummary(trx, row.customer_id)
  return {
    customer,
    purchase: {
      id: row.id,
      total: row.total,
      pointsEarned: row.points_earned,
      pointsUsed: row.points_used,
      points: customer.points,
      replayed: true,
    },
  }
}

/** Whether the receipt's customer is, after any merge since, the one scanned now. */
async function sameCustomer(
  db: Db,
  row: { customer_id: string | null },
  scannedCustomerId: string | null | undefined,
): Promise<boolean> {
  if (!row.customer_id || !scannedCustomerId) return row.customer_id === scannedCustomerId
  return (await findCurrentCustomer(db, row.customer_id))?.id === scannedCustomerId
}
