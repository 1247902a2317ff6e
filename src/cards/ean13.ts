import { randomInt } from 'node:crypto'

/** GS1 "restricted circulation" prefix (20–29): numbers that are only meaningful in our stores. */
export const DEFAULT_MEMBER_CARD_PREFIX = '29'

/** The GS1 check digit for the first 12 digits of an EAN-13 (weights 1,3,1,3,… from the left). */
export function ean13CheckDigit(first12: string): number {
  if (!/^\d{12}$/.test(first12)) throw new Error('an EAN-13 body is exactly 12 digits')
  let sum = 0
  for (let i = 0; i < 12; i++) sum += Number(first12[i]) * (i % 2 === 0 ? 1 : 3)
  return (10 - (sum % 10)) % 10
}

/** True for 13 digits whose last one is the GS1 check digit of the other 12. */
export function isValidEan13(code: string): boolean {
  return /^\d{13}$/.test(code) && ean13CheckDigit(code.slice(0, 12)) === Number(code[12])
}

/** prefix + the serial zero-padded to fill 12 digits + check digit. */
export function formatCardNumber(prefix: string, serial: bigint): string {
  if (!/^\d{2,3}$/.test(prefix)) throw new Error('a member-card prefix is 2 or 3 digits')
  const width = 12 - prefix.length
  if (serial < 0n || serial >= 10n ** BigInt(width)) {
    throw new Error(`member-card serial out of range for prefix ${prefix} (${width} digits)`)
  }
  const first12 = prefix + serial.toString().padStart(width, '0')
  return first12 + ean13CheckDigit(first12)
}

/**
 * A card number whose serial is drawn at random (node:crypto's CSPRNG) from the prefix's whole
 * serial space. The number alone is the credential at the register: numbers counted up (as
 * member_card_seq's were, which is no longer used) let a shopper add 1 to their own and spend
 * another member's points. One already taken is drawn again by the caller (insertNewCards).
 */
export function randomCardNumber(prefix: string): string {
  return formatCardNumber(prefix, BigInt(randomInt(10 ** (12 - prefix.length))))
}
