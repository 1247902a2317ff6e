import { z } from 'zod'
import {
  BARCODE_TOO_LONG,
  MAX_BARCODE_LENGTH,
  normaliseIdentity,
  readCode,
} from '../customers/identity-values.ts'
import { oneLineSchema } from '../platform/input.ts'

const yen = z.number().int('use whole yen').min(0).max(100_000_000)

export const receiptLineSchema = z.strictObject({
  sku: z.string().trim().min(1, 'required').max(64),
  name: oneLineSchema().max(200).nullish(),
  quantity: z.number().int().min(1).max(10_000),
  unitPrice: yen,
})

/**
 * A receipt id, read as barcodes are (readCode: NFKC, trimmed): staff retyping one with the IME
 * in full-width mode ("Ｒ-１２３") mean the receipt of that number, not a second sale. An ASCII id
 * reads as itself, so ids stored before are found as they were.
 */
const receiptId = z.string().transform(readCode).pipe(z.string().min(1, 'required').max(100))

/** A register's clock may run fast: an hour is wrong, but not a sale from tomorrow. */
const CLOCK_SKEW_MS = 60 * 60_000
/**
 * How old a receipt may be when it reaches us: a register that was offline replays its backlog
 * within days. Older sales belong in an orders import; a backdated receipt would otherwise count
 * coupons as valid at a time they were, and move first/last purchase dates.
 */
export const RECEIPT_MAX_AGE_DAYS = 30

const purchasedAt = z.iso
  .datetime({ offset: true, error: 'use an ISO 8601 date-time, e.g. 2026-11-23T10:15:00+09:00' })
  .transform((s) => new Date(s))
  .refine((at) => at.getTime() <= Date.now() + CLOCK_SKEW_MS, {
    error: 'is in the future: check the register clock',
  })
  .refine((at) => at.getTime() >= Date.now() - RECEIPT_MAX_AGE_DAYS * 86_400_000, {
    error: `is more than ${RECEIPT_MAX_AGE_DAYS} days ago: import older sales as orders`,
  })

/**
 * What the lines add up to, with consumption tax (10%) on top: a register may list prices
 * before tax and add the tax to the total.
 */
const linesWorth = (lines: { quantity: number; unitPrice: number }[]) =>
  Math.ceil((lines.reduce((sum, l) => sum + l.quantity * l.unitPrice, 0) * 110) / 100)

/** A barcode or coupon code as scanned or typed (readCode: full width, spaces around). */
function scannedCode(required: string) {
  return z
    .string({ error: required })
    .transform(readCode)
    .pipe(z.string().min(1, required).max(MAX_BARCODE_LENGTH, BARCODE_TOO_LONG))
}

/**
 * Unknown fields are refused (a misspelt `couponUsed` would otherwise leave the coupon unused).
 * `total` is what was paid: discounts may take it below the lines' sum, and tax at most 10%
 * above it; points pay for part of the sale, never more than the lines are worth with tax.
 */
export const receiptFields = {
  id: receiptId,
  purchasedAt,
  lines: z.array(receiptLineSchema).min(1, 'a receipt has at least one line').max(500),
  total: yen,
  pointsUsed: z.number().int().min(0).max(100_000_000).default(0),
  // Coupon codes are upper-case base32: one typed in lower case is the same coupon.
  couponsUsed: z
    .array(scannedCode('required').transform((code) => code.toUpperCase()))
    .max(20)
    .default([]),
}

/** The checks across a receipt's fields (for receiptSchema and the staff page's variant). */
function checkReceiptSums(
  r: { lines: { quantity: number; unitPrice: number }[]; total: number; pointsUsed: number },
  ctx: z.RefinementCtx,
): void {
  const worth = linesWorth(r.lines)
  if (r.total > worth) {
    ctx.addIssue({
      code: 'custom',
      path: ['total'],
      message: `is more than the lines add up to with 10% tax (${worth})`,
    })
  }
  checkPointsWorth(r, ctx, worth)
}

/**
 * Points pay for part of the sale, never more than its lines are worth with tax (receiptSchema's
 * rule, and the staff page's when lines are listed).
 */
export function checkPointsWorth(
  r: { lines: { quantity: number; unitPrice: number }[]; pointsUsed: number },
  ctx: z.RefinementCtx,
  worth = linesWorth(r.lines),
): void {
  if (r.pointsUsed > worth) {
    ctx.addIssue({
      code: 'custom',
      path: ['pointsUsed'],
      message: `is more than the lines are worth with 10% tax (${worth})`,
    })
  }
}

export const receiptSchema = z.strictObject(receiptFields).superRefine(checkReceiptSums)

/**
 * The scanned barcode as it came, trimmed: scan() reads it (readBarcode), and asks an erasure's
 * tombstone of this form too (one left before codes were read with NFKC hashed it).
 */
const barcode = z
  .string({ error: 'required: the scanned barcode' })
  .trim()
  .min(1, 'required: the scanned barcode')
  // Its own message: the string's error above would otherwise say "required" of this too.
  .max(MAX_BARCODE_LENGTH, BARCODE_TOO_LONG)

/**
 * A legacy plastic card scanned together with the member card, bound to the same person: stored
 * as read (normaliseIdentity), so checked that way here too, with the body's other fields (a
 * number within 64 characters as sent may be longer once read: "㍿" reads as 4).
 */
const linkBarcode = barcode.pipe(
  z.string().superRefine((raw, ctx) => {
    const read = normaliseIdentity('legacy_card', raw)
    if (!read.ok) ctx.addIssue({ code: 'custom', message: read.message })
  }),
)

export const scanBodySchema = z.strictObject({
  barcode,
  registerId: z.string().trim().min(1).max(64).nullish(),
  linkBarcode: linkBarcode.optional(),
  receipt: receiptSchema.optional(),
})

/** `POST /api/pos/receipts/:receiptId/void`: the receipt id the register recorded it under. */
export const voidParamsSchema = z.object({ receiptId })

export type ScanBody = z.infer<typeof scanBodySchema>
export type Receipt = z.infer<typeof receiptSchema>

export type ScanCoupon = {
  code: string
  title: string
  discountYen: number
  expiresAt: string | null
}

export type ScanResponse = {
  customer: {
    id: string
    /** null for a scanned coupon too: a coupon is no proof of who holds it. */
    displayName: string | null
    tier: string
    /** The balance; null for a scanned coupon (as displayName). */
    points: number | null
    coupons: ScanCoupon[]
  }
  purchase?: {
    id: string
    total: number
    pointsEarned: number
    pointsUsed: number
    /** The coupons the sale used (listed, or scanned as the barcode), in code order. */
    couponsUsed: string[]
    /** The balance after this purchase; null for a scanned coupon (as customer.points). */
    points: number | null
    replayed: boolean
  }
}
