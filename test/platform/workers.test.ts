import { afterAll, describe, expect, it } from 'vitest'
import { startTestKizuna } from '../support/harness.ts'
import { startPrivateRedis } from '../support/private-redis.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** How long `stop()` took, or 'hung' past 8 s. */
async function timeToStop(stop: () => Promise<void>): Promise<number | 'hung'> {
  const started = performance.now()
  const hung = new Promise<'hung'>((r) => setTimeout(() => r('hung'), 8_000).unref())
  const outcome = await Promise.race([stop().then(() => 'stopped' as const), hung])
  return outcome === 'hung' ? 'hung' : performance.now() - started
}

describe('stopping the workers', () => {
  it('takes seconds while Redis is down or reconnecting (BullMQ alone waited forever)', async () => {
    const redis = await startPrivateRedis()
    let current = redis
    cleanups.push(() => current.stop())
    const down = await startTestKizuna({ ROLE: 'worker', REDIS_URL: redis.url })
    const reconnecting = await startTestKizuna({ ROLE: 'worker', REDIS_URL: redis.url })
    await redis.stop()
    await new Promise((r) => setTimeout(r, 500))
    expect(await timeToStop(() => down.stop())).toBeLessThan(5_000)

    // Back a moment ago: the workers' connections are still waiting to try again.
    current = await startPrivateRedis(redis.port)
    expect(await timeToStop(() => reconnecting.stop())).toBeLessThan(5_000)
    await down.line.close()
    await reconnecting.line.close()
  }, 30_000)
})
