import { z } from 'zod'
import { isValidEan13 } from '../cards/ean13.ts'

export const IDENTITY_KINDS = [
  'line',
  'member_card',
  'legacy_card',
  'online_customer',
  'email',
  'phone',
] as const
export type IdentityKind = (typeof IDENTITY_KINDS)[number]
/**
 * `typed`: the value as it arrived, trimmed only, where it differs from `value` (a card in full
 * width): an erasure before card numbers were read with NFKC hashed that form (tombstonesOf).
 */
export type IdentityRef = { kind: IdentityKind; value: string; typed?: string }

/**
 * An address as Japanese carriers issued them until 2009 may have two dots in a row or a dot
 * before the `@` (`taro..yamada.@docomo.ne.jp`); those people still use them and mail reaches
 * them, so the local part takes dots anywhere. The domain is checked as usual.
 */
const EMAIL =
  /^[A-Za-z0-9._%+\-!#$&'*/=?^`{|}~]+@([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}$/

export const emailSchema = z
  .string()
  // Full-width (ｓａｂｕｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ), as typed with the IME on: read as ASCII.
  .overwrite((raw) => raw.normalize('NFKC'))
  .trim()
  .toLowerCase()
  .pipe(z.email({ pattern: EMAIL, error: 'not a valid email address' }).max(254))

/**
 * A card number, barcode or coupon code as it arrives: Unicode NFKC, trimmed. A keyboard-wedge
 * scanner typing while the IME is in full-width mode, staff typing a number by hand the same way
 * and legacy systems' CSV files give "２９１２…" and "Ｌ１２３"; NFKC reads them as ASCII (and
 * U+3000 as a space). What is inside stays: a legacy card's hyphens and spaces are its number's.
 */
export const readCode = (raw: string): string => raw.normalize('NFKC').trim()

/** ASCII digits, letters, signs and the space: each may have come in either width. */
const WIDTH_CLASSES = [/[0-9]/g, /[A-Za-z]/g, /[!-/:-@[-`{-~]/g, / /g]
const wide = (c: string) => (c === ' ' ? '\u3000' : String.fromCharCode(c.charCodeAt(0) + 0xfee0))

/**
 * The forms readCode reads as `code` that a number was typed in, as far as they can be told:
 * its digits, letters, signs and spaces each in ASCII or in full width (U+3000 for the space).
 * A scanner typing through the IME in full-width mode sends all of them wide ("ＡＢ－１２　３４"),
 * a spreadsheet may have digits wide and hyphens not ("１２３４-５６７８"). At most 16 forms,
 * `code` first. Not told: one class typed in both widths within a number ("１2３").
 */
export function widthFormsOf(code: string): string[] {
  let forms = [code]
  for (const chars of WIDTH_CLASSES) {
    if (code.replace(chars, wide) === code) continue
    forms = forms.flatMap((form) => [form, form.replace(chars, wide)])
  }
  return forms
}

/**
 * The digits of a number typed with spaces or dashes between them ("2 912345 678906", as printed
 * under a card's bars; "2912-3456…"; ー is the dash a Japanese IME types), or undefined when
 * anything else is in it.
 */
export function digitsOf(code: string): string | undefined {
  const digits = code.replace(/[\s\-‐−ー]/g, '')
  return /^\d+$/.test(digits) ? digits : undefined
}

/**
 * A number in the +81 form without its + ("819012345678"): 81, then a domestic number without
 * its trunk 0 (9 or 10 digits, not starting with 0). No domestic number starts with 81, so it is
 * read as +81, as the migration 20261208T150000-normalise-phone-country-code read stored ones.
 */
const COUNTRY_CODE_81 = /^81[1-9]\d{8,9}$/

/**
 * Phone numbers keep digits only, as the domestic number: full-width digits and hyphens (as
 * Japanese spreadsheets write them) are read as ASCII, and the country code 81 becomes the
 * trunk 0 ("+81 90-1234-5678", "+ 81 90…", "81-90-1234-5678" as a spreadsheet that dropped the
 * +, "０９０－１２３４－５６７８" → "09012345678"), so one number is one identity however it was
 * typed. A + read as a space in an unencoded query string (" 81 90…") is read the same way.
 * Letters ("ext 12") are refused, not dropped into the digits.
 */
export const phoneSchema = z
  .string()
  // Spaces after the + ("+ 81", "+　８１") are not part of the country code's sign.
  .transform((s) =>
    s
      .normalize('NFKC')
      .trim()
      .replace(/^\+\s+/, '+'),
  )
  .pipe(
    z
      .string()
      .regex(
        /^\+?[\d\s\-‐−ー().]+$/,
        'use digits, with spaces or hyphens (and + for a country code)',
      ),
  )
  .transform((s) => {
    const digits = s.replace(/\D/g, '')
    // "+81 (0)90…" keeps the trunk 0 it wrote: one 0.
    if (s.startsWith('+81')) return `0${digits.slice(2).replace(/^0/, '')}`
    return COUNTRY_CODE_81.test(digits) ? `0${digits.slice(2)}` : digits
  })
  .pipe(z.string().regex(/^\d{7,15}$/, 'use 7-15 digits'))

/** A member card number: its 13 digits, however it was typed (readCode, digitsOf). */
export const memberCardSchema = z
  .string()
  .transform((raw) => {
    const code = readCode(raw)
    return digitsOf(code) ?? code
  })
  .refine(isValidEan13, 'not a valid EAN-13 member card number (13 digits, GS1 check digit)')

const plainValue = z.string().trim().min(1, 'empty').max(200)

/** The longest barcode a register sends (`POST /api/pos/scans`), and its refusal. */
export const MAX_BARCODE_LENGTH = 64
export const BARCODE_TOO_LONG = `at most ${MAX_BARCODE_LENGTH} characters (the longest barcode a register sends)`

/**
 * An old plastic card's number as a register reads it (`POST /api/pos/scans` takes barcodes of
 * up to 64 characters; readCode). Whether it looks like one of this store's member cards depends
 * on `MEMBER_CARD_PREFIX` (readBarcode in src/pos/barcode.ts), checked by its callers.
 */
export const legacyCardSchema = z
  .string()
  .transform(readCode)
  .pipe(z.string().min(1, 'empty').max(MAX_BARCODE_LENGTH, BARCODE_TOO_LONG))

const valueSchemas: Record<IdentityKind, z.ZodType<string, string>> = {
  line: plainValue,
  member_card: memberCardSchema,
  legacy_card: legacyCardSchema,
  online_customer: plainValue,
  email: emailSchema,
  phone: phoneSchema,
}

/** Normalises a value of `kind` the way it is stored; returns the problem when it is invalid. */
export function normaliseIdentity(
  kind: IdentityKind,
  value: string,
): { ok: true; value: string } | { ok: false; message: string } {
  const parsed = valueSchemas[kind].safeParse(value)
  if (parsed.success) return { ok: true, value: parsed.data }
  return { ok: false, message: parsed.error.issues[0]?.message ?? 'invalid value' }
}

/** `kind:value` as in `?identity=member_card:2000000000015`. */
export const identityQuerySchema = z.string().transform((raw, ctx): IdentityRef => {
  const at = raw.indexOf(':')
  const kind = raw.slice(0, at)
  if (at < 0 || !(IDENTITY_KINDS as readonly string[]).includes(kind)) {
    ctx.addIssue({
      code: 'custom',
      message: `use kind:value with kind one of ${IDENTITY_KINDS.join(', ')}`,
    })
    return z.NEVER
  }
  const normalised = normaliseIdentity(kind as IdentityKind, raw.slice(at + 1))
  if (!normalised.ok) {
    ctx.addIssue({ code: 'custom', message: `${kind}: ${normalised.message}` })
    return z.NEVER
  }
  return { kind: kind as IdentityKind, value: normalised.value, typed: raw.slice(at + 1).trim() }
})
