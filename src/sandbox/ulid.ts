import { randomBytes } from 'node:crypto'

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ' // Crockford base32
const RANDOM_MAX = (1n << 80n) - 1n

function encode(value: bigint, length: number): string {
  let out = ''
  let rest = value
  for (let i = 0; i < length; i++) {
    out = ALPHABET[Number(rest % 32n)] + out
    rest /= 32n
  }
  return out
}

/**
 * A monotonic ULID factory (26 chars: 48-bit ms time + 80-bit randomness). Within the same
 * millisecond, or if the clock goes backwards, the random part is incremented, so ids always sort
 * in creation order.
 */
export function createUlidFactory(now: () => number = Date.now): () => string {
  let lastTime = -1
  let lastRandom = 0n
  return () => {
    const time = now()
    if (time > lastTime) {
      lastTime = time
      lastRandom = BigInt(`0x${randomBytes(10).toString('hex')}`) >> 1n // headroom to increment
    } else if (lastRandom < RANDOM_MAX) {
      lastRandom += 1n
    } else {
      lastTime += 1
      lastRandom = 0n
    }
    return encode(BigInt(lastTime), 10) + encode(lastRandom, 16)
  }
}
