import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createHourlyBudget,
  HOURLY_LIMITS,
  HourlyLimitReached,
} from '../../src/platform/hourly-budget.ts'
import { TEST_REDIS_URL } from '../support/env.ts'

/** Two connections, as a worker process and the CLI would have. */
let redisA: Redis
let redisB: Redis

beforeAll(() => {
  redisA = new Redis(TEST_REDIS_URL)
  redisB = new Redis(TEST_REDIS_URL)
})
afterAll(async () => {
  await Promise.all([redisA.quit(), redisB.quit()])
})

async function refusal(fn: () => Promise<unknown>): Promise<HourlyLimitReached> {
  const error = await fn().then(
    () => null,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(HourlyLimitReached)
  return error as HourlyLimitReached
}

describe('the hourly budget of LINE endpoints (shared in Redis)', () => {
  it('grants 100 rich-menu creates an hour across processes, then says when there is room', async () => {
    const prefix = `test-${randomUUID()}`
    const worker = createHourlyBudget(redisA, prefix)
    const cli = createHourlyBudget(redisB, prefix)
    expect(HOURLY_LIMITS['richmenu-create']).toBe(100)
    for (let i = 0; i < 100; i++) await (i % 2 === 0 ? worker : cli).take('richmenu-create')

    const refused = await refusal(() => cli.take('richmenu-create'))
    expect(refused.endpoint).toBe('richmenu-create')
    expect(refused.retryInMs).toBeGreaterThan(3_590_000)
    expect(refused.retryInMs).toBeLessThanOrEqual(3_600_000)
    await refusal(() => worker.take('richmenu-create'))
    // A refused call is not counted: the log holds the 100 that went.
    expect(await redisA.zcard(`${prefix}:line-limit-hourly:richmenu-create`)).toBe(100)

    // Each endpoint has its own budget; a channel under another prefix has its own too.
    await worker.take('richmenu-delete')
    await createHourlyBudget(redisA, `test-${randomUUID()}`).take('richmenu-create')
  })

  it('frees a slot when its call leaves the hour', async () => {
    const prefix = `test-${randomUUID()}`
    const key = `${prefix}:line-limit-hourly:richmenu-delete`
    const [seconds] = await redisA.time()
    const now = Number(seconds) * 1000
    // 99 calls made 10 minutes ago, and one made 61 minutes ago (gone from the hour).
    for (let i = 0; i < 99; i++) await redisA.zadd(key, now - 600_000, `old-${i}`)
    await redisA.zadd(key, now - 3_660_000, 'older')
    const budget = createHourlyBudget(redisA, prefix)

    await budget.take('richmenu-delete')
    const refused = await refusal(() => budget.take('richmenu-delete'))
    // Room again when the 10-minute-old calls leave the hour: in about 50 minutes.
    expect(refused.retryInMs).toBeGreaterThan(2_990_000)
    expect(refused.retryInMs).toBeLessThanOrEqual(3_000_000)
  })

  it('holds back nothing for endpoints without an hourly limit', async () => {
    const prefix = `test-${randomUUID()}`
    const budget = createHourlyBudget(redisA, prefix)
    for (let i = 0; i < 150; i++) await budget.take('richmenu-link')
    expect(await redisA.keys(`${prefix}:*`)).toEqual([])
  })
})
