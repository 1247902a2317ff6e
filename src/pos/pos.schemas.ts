import { z } from 'zod'

const yen = z.number().int('use whole yen').min(0).max(100_000_000)

export const receiptLineSchema = z.object({
  sku: z.string().trim().min(1, 'required').max(64),
  name: z.string().trim().max(200).nullish(),
  quantity: z.number().int().min(1).max(10_000),
  unitPrice: yen,
})

const receiptId = z.string().trim().min(1, 'required').max(100)

export const receiptSchema = z.object({
  id: receiptId,
  purchasedAt: z.iso
    .datetime({ offset: true, error: 'use an ISO 8601 date-time, e.g. 2026-11-23T10:15:00+09:00' })
    .transform((s) => new Date(s)),
  lines: z.array(receiptLineSchema).min(1, 'a receipt has at least one line').max(500),
  total: yen,
  pointsUsed: z.number().int().min(0).max(100_000_000).default(0),
  couponsUsed: z.array(z.string().trim().min(1).max(64)).max(20).default([]),
})

const barcode = z
  .string({ error: 'required: the scanned barcode' })
  .trim()
  .min(1, 'required: the scanned barcode')
  .max(64)

export const scanBodySchema = z.object({
  barcode,
  registerId: z.string().trim().min(1).max(64).nullish(),
  /** A legacy plastic card scanned together with the member card: bound to the same person. */
  linkBarcode: barcode.optional(),
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
    displayName: string | null
    tier: string
    points: number
    coupons: ScanCoupon[]
  }
  purchase?: {
    id: string
    total: number
    pointsEarned: number
    pointsUsed: number
    /** The balance after this purchase. */
    points: number
    replayed: boolean
  }
}
