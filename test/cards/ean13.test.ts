import { describe, expect, it } from 'vitest'
import { randomCouponCode } from '../../src/cards/coupon.ts'
import { ean13CheckDigit, formatCardNumber, isValidEan13 } from '../../src/cards/ean13.ts'

describe('EAN-13 card numbers', () => {
  it('computes the GS1 check digit of known codes', () => {
    expect(ean13CheckDigit('490123456789')).toBe(4)
    expect(ean13CheckDigit('400638133393')).toBe(1)
    expect(ean13CheckDigit('978030640615')).toBe(7)
    expect(ean13CheckDigit('000000000000')).toBe(0)
  })

  it('validates whole codes', () => {
    expect(isValidEan13('4901234567894')).toBe(true)
    expect(isValidEan13('4006381333931')).toBe(true)
    expect(isValidEan13('9780306406157')).toBe(true)
    expect(isValidEan13('4901234567895')).toBe(false)
    expect(isValidEan13('490123456789')).toBe(false)
    expect(isValidEan13('49012345678940')).toBe(false)
    expect(isValidEan13('490123456789X')).toBe(false)
    expect(isValidEan13('')).toBe(false)
  })

  it('formats prefix + zero-padded serial + check digit', () => {
    expect(formatCardNumber('29', 1n)).toBe('2900000000018')
    expect(formatCardNumber('250', 42n)).toMatch(/^250000000042\d$/)
    expect(isValidEan13(formatCardNumber('29', 9_999_999_999n))).toBe(true)
  })

  it('refuses a bad prefix or a serial that does not fit', () => {
    expect(() => formatCardNumber('2', 1n)).toThrow(/prefix/)
    expect(() => formatCardNumber('2a', 1n)).toThrow(/prefix/)
    expect(() => formatCardNumber('29', 10_000_000_000n)).toThrow(/out of range/)
    expect(() => formatCardNumber('299', 1_000_000_000n)).toThrow(/out of range/)
  })
})

describe('coupon codes', () => {
  it('are 10 uppercase base32 characters', () => {
    const codes = new Set(Array.from({ length: 200 }, () => randomCouponCode()))
    expect(codes.size).toBe(200)
    for (const code of codes) expect(code).toMatch(/^[A-Z2-7]{10}$/)
  })
})
