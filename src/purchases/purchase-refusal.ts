import { AppError } from '../platform/errors.ts'
import type { RecordOutcome } from './record-purchase.repo.ts'

/**
 * The fields, as the caller's request names them, that a refusal of its points or of a coupon
 * names in `details`: a register sends `receipt.pointsUsed` and `receipt.couponsUsed`, and a
 * coupon it scanned as the barcode is its `barcode`.
 */
export type PurchaseFields = { pointsUsed: string; coupon: (code: string) => string }

const WHY_NOT = "already used, expired or issued after the sale, or not this customer's"

/**
 * Why recordPurchaseOnce wrote nothing when no purchase is recorded under the key (a 409): the
 * points the balance lacks, a coupon listed twice, or the coupons that cannot be used, each named
 * in `details` as `fields` says (by default PurchaseInput's own names).
 */
export function purchaseRefusal(
  out: Pick<RecordOutcome, 'points' | 'codes' | 'usable_codes'>,
  used: { pointsUsed: number; couponCodes: string[] },
  fields: PurchaseFields = {
    pointsUsed: 'pointsUsed',
    coupon: (code) => `couponCodes.${used.couponCodes.indexOf(code)}`,
  },
): AppError {
  const { pointsUsed, couponCodes } = used
  const balance = out.points ?? 0
  if (balance < pointsUsed) {
    const message = `not enough points: the balance is ${balance}, the receipt uses ${pointsUsed}`
    const problem = `is more than the balance of ${balance}`
    return new AppError('CONFLICT', message, {
      details: [{ field: fields.pointsUsed, message: problem }],
    })
  }
  // Not reachable from a request: the register's codes come without repeats.
  if (new Set(couponCodes).size !== couponCodes.length) {
    return new AppError('CONFLICT', 'a coupon is listed twice; each coupon can be used once')
  }
  const usable = new Set(out.usable_codes ?? [])
  const refused = out.codes.filter((code) => !usable.has(code))
  return new AppError('CONFLICT', `coupon ${refused.join(', ')} cannot be used: ${WHY_NOT}`, {
    details: refused.map((code) => ({
      field: fields.coupon(code),
      message: `coupon ${code} cannot be used: ${WHY_NOT}`,
    })),
  })
}
