import { z } from 'zod'
import { emailSchema } from '../customers/identity-values.ts'
import { oneLineSchema } from '../platform/input.ts'

export const orderSourceSchema = z
  .string('name the shop system (source)')
  .trim()
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'use 1-64 letters, digits, ".", "_" or "-"')

/** A shop system's clock may run a little fast; an order from tomorrow is a wrong date. */
const CLOCK_SKEW_MS = 60 * 60_000
/**
 * The earliest order date taken (1990-01-01 in Japan): a retailer's oldest kept sales, register
 * history imported as orders, come from the 1990s at the earliest. An older date is a wrong one
 * (a blank turned into year 0, which Postgres kept as 1 BC and COPY refused, sending the import's
 * whole batch one order at a time).
 */
const EARLIEST_ORDER = new Date('1990-01-01T00:00:00+09:00')

/**
 * Each check with its own message: the number's own error (`what in whole yen`) would otherwise
 * be said of a negative or too large one too.
 */
const yen = (what: string) =>
  z
    .number(`${what} in whole yen`)
    .int(`${what} in whole yen`)
    .min(0, `${what} in whole yen, not below 0`)
    .max(2_000_000_000, `${what} in whole yen, at most 2000000000`)

export const orderLineSchema = z.strictObject({
  sku: z.string().trim().min(1, 'a line needs a sku').max(64),
  name: oneLineSchema().min(1).max(300).optional(),
  quantity: z
    .number('a whole number above 0')
    .int('a whole number above 0')
    .min(1, 'a whole number above 0')
    .max(100_000, 'at most 100000'),
  unitPrice: yen('the price'),
})

/** One online order, as `POST /api/orders` takes it and as an NDJSON import line holds it. */
export const orderSchema = z.strictObject({
  source: orderSourceSchema,
  orderId: z.string().trim().min(1, 'an order needs its id').max(200),
  customer: z
    .strictObject({
      externalId: z.string().trim().min(1).max(200).optional(),
      email: emailSchema.optional(),
    })
    .default({}),
  orderedAt: z.iso
    .datetime({ offset: true, error: 'use an ISO 8601 date-time, e.g. 2026-11-23T10:00:00+09:00' })
    .transform((s) => new Date(s))
    .refine((at) => at.getTime() <= Date.now() + CLOCK_SKEW_MS, {
      error: "is in the future: check the shop system's dates",
    })
    .refine((at) => at >= EARLIEST_ORDER, {
      error: "is before 1990-01-01 (Japan time): check the shop system's dates",
    }),
  lines: z.array(orderLineSchema).min(1, 'an order has at least one line').max(1000),
  total: yen('the total'),
})
export type Order = z.infer<typeof orderSchema>

const cell = z.string().optional()

/**
 * One CSV row of `kizuna import orders`: an order line with its order's fields repeated.
 * Values are checked once the order is put together (orderSchema).
 */
export const orderCsvRowSchema = z.strictObject({
  source: cell,
  order_id: z.string('an order needs its id'),
  customer_external_id: cell,
  customer_email: cell,
  ordered_at: cell,
  sku: cell,
  name: cell,
  quantity: cell,
  unit_price: cell,
  total: cell,
})
export type OrderCsvRow = z.infer<typeof orderCsvRowSchema>

/** The most one order may take, as a body of POST /api/orders or a line of an NDJSON import. */
export const MAX_ORDER_BYTES = 256 * 1024

type OrderCustomer = { externalId?: string | null; email?: string | null }

/** The identity an unmatched order waits for: the shop's customer id, else the email. */
export function pendingIdentityOf(
  customer: OrderCustomer,
): { kind: 'online_customer' | 'email'; value: string } | null {
  if (customer.externalId) return { kind: 'online_customer', value: customer.externalId }
  if (customer.email) return { kind: 'email', value: customer.email }
  return null
}

/**
 * The email an unmatched order waits for besides the shop's customer id (the purchase's
 * pending_email): with both, it attaches to whichever appears first.
 */
export function pendingEmailOf(customer: OrderCustomer): string | null {
  return customer.externalId && customer.email ? customer.email : null
}
