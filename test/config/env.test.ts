import { describe, expect, it } from 'vitest'
import { ConfigError, isSandbox, loadEnv } from '../../src/config/env.ts'
import { assertRedisReachable } from '../../src/platform/redis.ts'

describe('loadEnv', () => {
  it('runs with no variables at all: embedded database, sandbox LINE, documented defaults', () => {
    const env = loadEnv({})
    expect(env.PORT).toBe(3000)
    expect(env.ROLE).toBe('all')
    expect(env.DATABASE_URL).toBeUndefined()
    expect(env.REDIS_URL).toBe('redis://127.0.0.1:6379')
    expect(env.TZ_STORE).toBe('Asia/Tokyo')
    expect(env.LINE_PUSH_RATE_PER_SECOND).toBe(2000)
    expect(env.QUIET_HOURS).toBe('21:00-09:00')
    expect(env.MARKETING_WEEKLY_CAP).toBe(3)
    expect(env.POST_PURCHASE_DELAY_SECONDS).toBe(3600)
    expect(isSandbox(env)).toBe(true)
  })

  it('reports every bad variable at once, by name', () => {
    let message = ''
    try {
      loadEnv({
        PORT: 'eighty',
        REDIS_URL: 'http://x',
        TZ_STORE: 'Mars/Olympus',
        QUIET_HOURS: '9pm-9am',
        LINE_CHANNEL_SECRET: 'only-the-secret',
        POINTS_RATE_PERCENT: '0.125',
      })
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError)
      message = (error as Error).message
    }
    for (const name of [
      'PORT',
      'REDIS_URL',
      'TZ_STORE',
      'QUIET_HOURS',
      'LINE_CHANNEL_ACCESS_TOKEN',
      'POINTS_RATE_PERCENT',
    ]) {
      expect(message).toContain(name)
    }
  })

  it('accepts an empty QUIET_HOURS as "no quiet hours"', () => {
    expect(loadEnv({ QUIET_HOURS: '' }).QUIET_HOURS).toBe('')
  })

  it('takes a QUEUE_PREFIX of letters, digits, - and _, never one with ":"', () => {
    expect(loadEnv({}).QUEUE_PREFIX).toBe('kizuna')
    expect(loadEnv({ QUEUE_PREFIX: 'shop-2_b' }).QUEUE_PREFIX).toBe('shop-2_b')
    expect(() => loadEnv({ QUEUE_PREFIX: 'shop:2' })).toThrow(/QUEUE_PREFIX/)
    expect(() => loadEnv({ QUEUE_PREFIX: 'shop 2' })).toThrow(/QUEUE_PREFIX/)
  })

  it('refuses split roles on the embedded database', () => {
    expect(() =>
      loadEnv({ ROLE: 'worker', LINE_CHANNEL_SECRET: 's', LINE_CHANNEL_ACCESS_TOKEN: 't' }),
    ).toThrow(/use ROLE=all\n\s+→ at ROLE/)
  })
})

describe('assertRedisReachable', () => {
  it('names REDIS_URL when Redis is not there', async () => {
    await expect(assertRedisReachable('redis://127.0.0.1:1', 500)).rejects.toThrow(/REDIS_URL/)
  })
})
