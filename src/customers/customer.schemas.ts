import { z } from 'zod'
import { emailSchema, memberCardSchema, phoneSchema } from './identity-values.ts'

const YES = ['true', '1', 'yes', 'y']
const NO = ['false', '0', 'no', 'n']
const consentSchema = z.preprocess((v) => {
  if (typeof v !== 'string') return v
  const word = v.trim().toLowerCase()
  return YES.includes(word) ? true : NO.includes(word) ? false : v
}, z.boolean('use true or false'))

/** One row of `kizuna import customers` (CSV columns; empty cells are absent). */
export const customerImportRowSchema = z
  .strictObject({
    external_id: z.string().trim().min(1).max(200).optional(),
    email: emailSchema.optional(),
    name: z.string().trim().min(1).max(200).optional(),
    phone: phoneSchema.optional(),
    birthday: z.iso.date('use YYYY-MM-DD').optional(),
    member_card: memberCardSchema.optional(),
    marketing_consent: consentSchema.optional(),
  })
  .refine((row) => row.external_id ?? row.email ?? row.member_card ?? row.phone, {
    path: ['external_id'],
    message: 'give at least one of external_id, email, member_card, phone',
  })
export type CustomerImportRow = z.infer<typeof customerImportRowSchema>
