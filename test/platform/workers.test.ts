import { afterAll, describe, expect, it } from 'vitest'
import { startTestKizuna } from '../support/harness.ts'
import { startPrivateRedis } from '../support/private-redis.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** Whether `stop()` ended, or 'hung' when it had not after 15 s (a shutdown's deadline is 30 s). */
async function stopOutcome(stop: () => Promise<void>): Promise<'stopped' | 'hung'> {
  const hung = new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000).unref())
  return Promise.race([stop().then(() => 'stopped' as const), hung])
}

describe('stopping the workers', () => {
  it('ends while Redis is down or reconnecting (BullMQ alone waited forever)', async () => {
    const redis = await startPrivateRedis()
    let current = redis
    cleanups.push(() => current.stop())
    const down = await startTestKizuna({ ROLE: 'worker', REDIS_URL: redis.url })
    const reconnecting = await startTestKizuna({ ROLE: 'worker', REDIS_URL: redis.url })
    await redis.stop()
    await new Promise((r) => setTimeout(r, 500))
    expect(await stopOutcome(() => down.stop())).toBe('stopped')

    // Back a moment ago: the workers' connections are still waiting to try again.
    current = await startPrivateRedis(redis.port)
    expect(await stopOutcome(() => reconnecting.stop())).toBe('stopped')
    await down.line.close()
    await reconnecting.line.close()
  }, 60_000)
})
