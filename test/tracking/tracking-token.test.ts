import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { signTrackingToken, verifyTrackingToken } from '../../src/tracking/tracking-token.ts'

const SECRET = 'test-secret'

describe('tracking tokens', () => {
  it('verify for their own kind only, and only in their one spelling', () => {
    const deliveryId = randomUUID()
    const token = signTrackingToken<'r'>(SECRET, ['r', deliveryId, 'https://shop.example/'])
    expect(verifyTrackingToken(SECRET, 'r', token)).toEqual([
      'r',
      deliveryId,
      'https://shop.example/',
    ])
    expect(verifyTrackingToken(SECRET, 'o', token)).toBeNull()
    expect(verifyTrackingToken('another-secret', 'r', token)).toBeNull()
    // Every other spelling of the signature's last character decodes to the same bytes.
    const last = token.at(-1) ?? ''
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const i = alphabet.indexOf(last)
    for (const other of alphabet.slice(i - (i % 4), i - (i % 4) + 4)) {
      if (other === last) continue
      expect(verifyTrackingToken(SECRET, 'r', token.slice(0, -1) + other)).toBeNull()
    }
  })

  it('refuses a signed payload that is not a valid one (a non-http URL)', () => {
    const token = signTrackingToken(SECRET, ['r', randomUUID(), 'javascript:alert(1)'] as never)
    expect(verifyTrackingToken(SECRET, 'r', token)).toBeNull()
  })
})
