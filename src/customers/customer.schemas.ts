import { z } from 'zod'
import { oneLineSchema } from '../platform/input.ts'
import { emailSchema, normaliseIdentity, phoneSchema } from './identity-values.ts'
import { tagListSchema } from './tag-values.ts'

const YES = ['true', 'yes', 'y', '1', 'はい']
const NO = ['false', 'no', 'n', '0', 'いいえ']
/** Read with NFKC (full-width ｙｅｓ, １), in any case. */
const consentSchema = z.preprocess(
  (v) => {
    if (typeof v !== 'string') return v
    const word = v.normalize('NFKC').trim().toLowerCase()
    return YES.includes(word) ? true : NO.includes(word) ? false : v
  },
  z.boolean(`use ${YES.join(', ')} for yes, or ${NO.join(', ')} for no`),
)

const BIRTHDAY_FORMATS = 'use a real date as YYYY-MM-DD, YYYY/MM/DD or YYYY.MM.DD'

/**
 * `1990/4/1` as `1990-04-01`: Japanese exports write dates with slashes or dots, often with
 * full-width digits (NFKC) and without leading zeros. Anything else is left for z.iso.date.
 */
function isoDateOf(typed: unknown): unknown {
  if (typeof typed !== 'string') return typed
  const date = /^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})$/.exec(typed.normalize('NFKC').trim())
  if (!date) return typed
  return `${date[1]}-${date[3]?.padStart(2, '0')}-${date[4]?.padStart(2, '0')}`
}

/**
 * A real calendar date (2026-02-30 is refused) that is not in the future nor before 1900
 * ("today" leaves a day's slack, for a store time zone ahead of UTC), in any of BIRTHDAY_FORMATS.
 */
const birthdaySchema = z.preprocess(
  isoDateOf,
  z.iso
    .date(BIRTHDAY_FORMATS)
    .refine(
      (d) => d >= '1900-01-01' && d <= new Date(Date.now() + 86_400_000).toISOString().slice(0, 10),
      'not a plausible birthday: use a date from 1900-01-01 to today',
    ),
)

/**
 * A card column: the number as stored and looked up (`value`, normaliseIdentity) and as the file
 * gave it, trimmed only (`typed`): an erasure before card numbers were read with NFKC hashed that
 * form (tombstonesOf).
 */
const cardColumn = (kind: 'member_card' | 'legacy_card') =>
  z.string().transform((raw, ctx) => {
    const read = normaliseIdentity(kind, raw)
    if (read.ok) return { value: read.value, typed: raw.trim() }
    ctx.addIssue({ code: 'custom', message: read.message })
    return z.NEVER
  })

/** One row of `kizuna import customers` (CSV columns; empty cells are absent). */
export const customerImportRowSchema = z
  .strictObject({
    external_id: z.string().trim().min(1).max(200).optional(),
    email: emailSchema.optional(),
    /** Checked as a product's name is: it goes out in LINE messages and emails as one line. */
    name: oneLineSchema().min(1).max(200).optional(),
    phone: phoneSchema.optional(),
    birthday: birthdaySchema.optional(),
    member_card: cardColumn('member_card').optional(),
    /** An old plastic card's number, bound to the customer (as a register links one). */
    legacy_card: cardColumn('legacy_card').optional(),
    marketing_consent: consentSchema.optional(),
    /** Added to the customer's tags, never replacing them. */
    tags: tagListSchema.optional(),
  })
  .refine(
    (row) => row.external_id ?? row.email ?? row.member_card ?? row.legacy_card ?? row.phone,
    {
      path: ['external_id'],
      message: 'give at least one of external_id, email, member_card, legacy_card, phone',
    },
  )
export type CustomerImportRow = z.infer<typeof customerImportRowSchema>

export const customerIdSchema = z.uuid('not a customer id')
