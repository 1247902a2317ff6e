import { findCurrentCustomer } from '../customers/surviving-customer.service.ts'
import type { Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { linesChange } from '../purchases/same-lines.ts'
import { memberSummary } from './member-summary.ts'
import { findPurchaseResult } from './pos.repo.ts'
import type { Receipt, ScanResponse } from './pos.schemas.ts'

/**
 * The purchase as answered the first time, marked as a replay (rebuilt if none was stored), with
 * the member as they are now (memberSummary: merges since lead to the survivor, whose balance
 * the purchase's `points` then is). A receipt id
 * that comes back with another member's card, another total, other goods (linesChange: the same
 * goods in another order of lines are a retry) or another `purchasedAt` (a register whose receipt
 * counter was reset, selling the same again another day) is not a replay but a second sale under
 * a used number: 409. The member is checked first: another member's register is told the
 * id is taken and nothing else (not the total, not a void), and the first member's data stays at
 * the register that recorded it.
 * So is one that claims points or coupons (listed, or scanned as the barcode) the sale did not
 * use: answered as a replay, the register would give a discount nothing paid for. A retry that
 * leaves them out gets the first answer, which says what was used. A voided receipt is a 409
 * whatever comes with it (voidedConflict): its first answer no longer stands.
 */
export async function replayOf(
  trx: Db,
  purchaseId: string,
  receipt: Receipt,
  scannedCustomerId: string | null | undefined,
  scannedCoupon: string | null,
): Promise<ScanResponse> {
  const row = await findPurchaseResult(trx, purchaseId)
  // First: another member's register learns nothing of the sale (its total, its void).
  if (row.customer_id !== scannedCustomerId && !(await sameCustomer(trx, row, scannedCustomerId))) {
    throw new AppError(
      'CONFLICT',
      `receipt ${receipt.id} was already recorded for another member; a different sale needs ` +
        'its own receipt id',
      { details: [{ field: 'receipt.id', message: 'already used for another member' }] },
    )
  }
  if (row.voided_at) throw voidedConflict(receipt.id, row.voided_at)
  if (row.total !== receipt.total) {
    throw new AppError(
      'CONFLICT',
      `receipt ${receipt.id} was already recorded with total ${row.total}; a different sale ` +
        'needs its own receipt id',
      { details: [{ field: 'receipt.id', message: 'already used for another sale' }] },
    )
  }
  const lines = linesChange(row, receipt.lines)
  if (lines) {
    throw new AppError(
      'CONFLICT',
      `receipt ${receipt.id} was already recorded with other lines (${lines}); a different sale ` +
        'needs its own receipt id',
      { details: [{ field: 'receipt.lines', message: 'differ from the recorded sale' }] },
    )
  }
  // Stored as sent (to the millisecond, as a Date reads it): the same instant in another offset is
  // the same sale; another time is another sale under a used number (a receipt counter reset).
  if (row.purchased_at.getTime() !== receipt.purchasedAt.getTime()) {
    throw new AppError(
      'CONFLICT',
      `receipt ${receipt.id} was already recorded as purchased at ` +
        `${row.purchased_at.toISOString()}; a different sale needs its own receipt id`,
      { details: [{ field: 'receipt.purchasedAt', message: 'differs from the recorded sale' }] },
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
  if (listed.some((code) => !usedCodes.includes(code))) {
    const used = usedCodes.length > 0 ? `coupons ${usedCodes.join(', ')}` : 'no coupon'
    throw new AppError(
      'CONFLICT',
      `receipt ${receipt.id} was already recorded with ${used}; a different sale needs its own ` +
        'receipt id',
      { details: [{ field: 'receipt.couponsUsed', message: 'differs from the recorded sale' }] },
    )
  }
  // The member as they are now, not as first answered: one merged since (an account link, a card
  // linked at another register) is the survivor, not the emptied row the first answer named.
  const customerId = scannedCustomerId ?? row.customer_id
  if (!customerId) throw new AppError('CONFLICT', 'this receipt was recorded without a member')
  const customer = await memberSummary(trx, customerId)
  const stored = row.result as ScanResponse | null
  // What was used is read from the coupons themselves: an answer stored before it said so has none.
  if (stored?.purchase) {
    // The balance after the sale was the member's first answered: merged away since, the
    // balance is the survivor's now, as `customer.points` says (not the emptied row's).
    const points = stored.customer?.id === customer.id ? stored.purchase.points : customer.points
    return {
      customer,
      purchase: { ...stored.purchase, points, couponsUsed: usedCodes, replayed: true },
    }
  }
  return {
    customer,
    purchase: {
      id: row.id,
      total: row.total,
      pointsEarned: row.points_earned,
      pointsUsed: row.points_used,
      couponsUsed: usedCodes,
      points: customer.points,
      replayed: true,
    },
  }
}

/**
 * A voided receipt sent again: the register went offline before the answer came, the sale was
 * voided meanwhile, and the register replays it. Its first answer would show the points the void
 * took back as earned (a field marking it voided would go unseen by a register that does not know
 * it), and recording it again would undo the void: it is refused, naming the receipt and when it
 * was voided, and nothing is written.
 */
function voidedConflict(receiptId: string, voidedAt: Date): AppError {
  const when = voidedAt.toISOString()
  return new AppError(
    'CONFLICT',
    `receipt ${receiptId} was voided at ${when}; a voided receipt is not recorded again: a new ` +
      'sale needs its own receipt id',
    { details: [{ field: 'receipt.id', message: `voided at ${when}` }] },
  )
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
