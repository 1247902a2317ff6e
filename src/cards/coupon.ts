import { randomBytes } from 'node:crypto'

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

export const WELCOME_COUPON = {
  kind: 'welcome',
  title: '¥500 OFF ウェルカムクーポン',
  discountYen: 500,
  validDays: 30,
} as const

/** A random code of `length` RFC 4648 base32 characters (5 random bits each). */
export function randomCouponCode(length = 10): string {
  const bytes = randomBytes(length)
  let code = ''
  for (const byte of bytes) code += BASE32[byte & 31]
  return code
}
