import { AppError } from '../platform/errors.ts'
import type { RecordOutcome } from './record-purchase.repo.ts'

/**
 * The fields, as the caller's request names them, that a refusal of its points or of a coupon
 * names in `details`: a register sends `receipt.pointsUsed` and `receipt.couponsUsed`, and a
 * coupon it scanned as the barcode is its `barcode`.
 */
export type PurchaseFields = { pointsUsed: string; coupon: (code: string) => string }

const WHY_NOT = "already used, expired or issued after the sale, or not this customer's"

const COUPON_SCAN = 'scan the member card to use points or other coupons'

/**
 * A sale whose customer was found by a coupon code (`via` coupon) that also uses points or
 * another coupon: a 403 naming each, or undefined when it uses that coupon alone. A coupon names
 * its owner but is no proof of who is at the register (shoppers pass coupons on): it gives the
 * sale itself, not the owner's balance or their other coupons.
 */
export function couponScanRefusal(
  coupon: string,
  used: { pointsUsed: number; couponCodes: string[] },
  fields: PurchaseFields,
): AppError | undefined {
  const others = used.couponCodes.filter((code) => code !== coupon)
  const details = [
    ...(used.pointsUsed > 0
      ? [{ field: fields.pointsUsed, message: `not with a coupon scan: ${COUPON_SCAN}` }]
      : []),
    ...others.map((code) => ({
      field: fields.coupon(code),
      message: `coupon ${code} not with a coupon scan: ${COUPON_SCAN}`,
    })),
  ]
  if (details.length === 0) return undefined
  return new AppError(
    'FORBIDDEN',
    `coupon ${coupon} was scanned: the sale may use that coupon only; ${COUPON_SCAN}`,
    { details },
  )
}

/**
 * Why recordPurchaseOnce wrote nothing when no purchase is recorded under the key: points or
 * another coupon with a customer found by a coupon (403: couponScanRefusal), else (409) the
 * points the balance lacks, a coupon listed twice, or the coupons that cannot be used, each named
 * in `details` as `fields` says (by default PurchaseInput's own names).
 */
export function purchaseRefusal(
  out: Pick<RecordOutcome, 'points' | 'codes' | 'usable_codes' | 'via' | 'coupon'>,
  used: { pointsUsed: number; couponCodes: string[] },
  fields: PurchaseFields = {
    pointsUsed: 'pointsUsed',
    coupon: (code) => `couponCodes.${used.couponCodes.indexOf(code)}`,
  },
): AppError {
  const { pointsUsed, couponCodes } = used
  const scanRefusal =
    out.via === 'coupon' && out.coupon && couponScanRefusal(out.coupon, used, fields)
  if (scanRefusal) return scanRefusal
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
