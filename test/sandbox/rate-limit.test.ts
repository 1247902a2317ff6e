import { describe, expect, it } from 'vitest'
import { createRateLimiter, LINE_RATE_LIMITS } from '../../src/sandbox/rate-limit.ts'

describe('createRateLimiter', () => {
  it('empties the bucket, then refills it continuously', () => {
    let now = 0
    const limiter = createRateLimiter(
      { 'POST /v2/bot/message/push': { capacity: 2, perMs: 1000 } },
      () => now,
    )
    const take = () => limiter.take('POST /v2/bot/message/push')
    expect([take(), take(), take()]).toEqual([true, true, false])
    now += 499
    expect(take()).toBe(false)
    now += 1
    expect([take(), take()]).toEqual([true, false])
  })

  it("uses LINE's table per method and endpoint, 2000/s otherwise", () => {
    const limiter = createRateLimiter({}, () => 0)
    expect(LINE_RATE_LIMITS['POST /v2/bot/richmenu']).toEqual({ capacity: 100, perMs: 3_600_000 })
    const creates = Array.from({ length: 101 }, () => limiter.take('POST /v2/bot/richmenu'))
    expect(creates.filter(Boolean)).toHaveLength(100)
    const pushes = Array.from({ length: 2001 }, () => limiter.take('POST /v2/bot/message/push'))
    expect(pushes.filter(Boolean)).toHaveLength(2000)
    expect(limiter.take('GET /v2/bot/richmenu/list')).toBe(true)
  })

  it('can disable or change a limit at runtime', () => {
    const limiter = createRateLimiter({ 'GET /v2/bot/info': null }, () => 0)
    for (let i = 0; i < 3000; i++) expect(limiter.take('GET /v2/bot/info')).toBe(true)
    limiter.set('GET /v2/bot/info', { capacity: 1, perMs: 1000 })
    expect([limiter.take('GET /v2/bot/info'), limiter.take('GET /v2/bot/info')]).toEqual([
      true,
      false,
    ])
  })
})
