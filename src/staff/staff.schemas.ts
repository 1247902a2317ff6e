import { z } from 'zod'
import {
  checkPointsWorth,
  receiptFields,
  receiptLineSchema,
  scanBodySchema,
} from '../pos/pos.schemas.ts'

/**
 * The points a staff receipt uses: typed by hand, and capped in the browser only by the balance,
 * a mistyped 5000 for 500 would drain it. They are no more than the total, nor (lines listed) than
 * the lines are worth, as the register API checks.
 */
function checkStaffPoints(
  r: { lines: { quantity: number; unitPrice: number }[]; total: number; pointsUsed: number },
  ctx: z.RefinementCtx,
): void {
  if (r.pointsUsed > r.total) {
    ctx.addIssue({
      code: 'custom',
      path: ['pointsUsed'],
      message: `is more than the total (${r.total})`,
    })
  } else if (r.lines.length > 0) checkPointsWorth(r, ctx)
}

/**
 * The staff page sends the POS scan body, except that receipt lines are optional: staff at a
 * register without itemised data record the total only (the purchase service accepts no lines).
 */
export const staffScanSchema = scanBodySchema.omit({ linkBarcode: true }).extend({
  // The total is not checked against the lines: staff may itemise some of a sale's lines, or none.
  receipt: z
    .strictObject({ ...receiptFields, lines: z.array(receiptLineSchema).max(50).default([]) })
    .superRefine(checkStaffPoints)
    .optional(),
})

/**
 * The key as pasted: spaces and line breaks around it are not part of it. One inside it (a key
 * copied across a wrapped line) would reach the API check as a malformed Authorization header,
 * whose message means nothing at the login form: said here as what it is.
 */
export const staffLoginSchema = z.object({
  key: z
    .string({ error: 'enter the store API key' })
    .trim()
    .min(1, 'enter the store API key')
    .max(200)
    .regex(/^\S*$/, 'the key has a space or line break in it: paste it again without them'),
})

export type StaffScanBody = z.infer<typeof staffScanSchema>
