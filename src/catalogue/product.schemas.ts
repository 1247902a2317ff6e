import { z } from 'zod'
import { hasRfc3986Host } from '../flex/flex-url.ts'
import { oneLineSchema } from '../platform/input.ts'

const sku = z
  .string('a product needs a sku')
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$/, 'use 1-64 letters, digits, ".", "_", "-" or "/"')

/** A whole number from JSON or from a CSV cell. */
const wholeNumber = (message: string) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
    z.number(message).int(message).min(0, message).max(2_000_000_000, message),
  )

/** `a;b` in a CSV cell, an array in NDJSON. */
const skuList = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(';')
          .map((x) => x.trim())
          .filter((x) => x !== '')
      : v,
  z.array(sku, 'use a list of skus ("a;b" in CSV, an array in NDJSON)'),
)

/**
 * One product of `kizuna import products`: a CSV row (related_skus `a;b`) or an NDJSON object.
 * An optional field left out leaves the stored value alone (a CSV file without the column, an
 * NDJSON object without the key); null clears it (an empty cell of a CSV column: saveProducts).
 */
export const productImportSchema = z.strictObject({
  sku,
  // The max's own message: the string's error would otherwise say the name is missing.
  name: oneLineSchema('a product needs a name')
    .min(1, 'a product needs a name')
    .max(300, 'at most 300 characters'),
  category: z.string().trim().min(1).max(100).nullable().optional(),
  price: wholeNumber('use whole yen, e.g. 12800').nullable().optional(),
  image_url: z
    .url({ protocol: /^https$/, error: 'use an https:// URL' })
    .max(2000, 'at most 2000 characters')
    // One that does not parse has its message above.
    .refine(
      (url) => !URL.canParse(url) || hasRfc3986Host(url),
      'use an https:// URL whose host is a domain name or an IP address',
    )
    .nullable()
    .optional(),
  related_skus: skuList.nullable().optional(),
  warranty_months: wholeNumber('use whole months, e.g. 24').nullable().optional(),
})
export type ProductImport = z.infer<typeof productImportSchema>

/** The fields a product may leave out: left out, the stored value stays. */
export const OPTIONAL_PRODUCT_FIELDS = [
  'category',
  'price',
  'image_url',
  'related_skus',
  'warranty_months',
] as const satisfies readonly (keyof ProductImport)[]
