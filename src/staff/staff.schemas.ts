import { z } from 'zod'
import { receiptFields, receiptLineSchema, scanBodySchema } from '../pos/pos.schemas.ts'

/**
 * The staff page sends the POS scan body, except that receipt lines are optional: staff at a
 * register without itemised data record the total only (the purchase service accepts no lines).
 */
export const staffScanSchema = scanBodySchema.omit({ linkBarcode: true }).extend({
  // No sums checked: staff may itemise some of a sale's lines, or none.
  receipt: z
    .strictObject({ ...receiptFields, lines: z.array(receiptLineSchema).max(50).default([]) })
    .optional(),
})

export const staffLoginSchema = z.object({
  key: z
    .string({ error: 'enter the store API key' })
    .trim()
    .min(1, 'enter the store API key')
    .max(200),
})

export type StaffScanBody = z.infer<typeof staffScanSchema>
