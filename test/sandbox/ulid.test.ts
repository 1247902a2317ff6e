import { describe, expect, it } from 'vitest'
import { createUlidFactory } from '../../src/sandbox/ulid.ts'

describe('createUlidFactory', () => {
  it('encodes the time in the first 10 Crockford base32 characters', () => {
    const ulid = createUlidFactory(() => 1_469_918_176_385)()
    expect(ulid).toMatch(/^01ARYZ6S41[0-9A-HJKMNP-TV-Z]{16}$/)
  })

  it('is monotonic within a millisecond and when the clock goes backwards', () => {
    let now = 1_700_000_000_000
    const next = createUlidFactory(() => now)
    const ids = [next(), next(), next()]
    now -= 5
    ids.push(next())
    now += 10
    ids.push(next())
    expect([...ids].sort()).toEqual(ids)
    expect(new Set(ids).size).toBe(ids.length)
  })
})
