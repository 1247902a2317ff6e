import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { closeDeps, createDeps } from '../../src/main/deps.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { TEST_REDIS_URL } from '../support/env.ts'
import { testEnv } from '../support/harness.ts'

const redis = new Redis(TEST_REDIS_URL)
afterAll(() => redis.quit())

describe('createDeps', () => {
  it("keeps jobs under QUEUE_PREFIX, so Kizunas sharing one Redis never see each other's", async () => {
    const ours = `test-${randomUUID()}`
    const theirs = `test-${randomUUID()}`
    const log = createLogger('silent')
    const a = await createDeps(testEnv({ QUEUE_PREFIX: ours }), { log })
    const b = await createDeps(testEnv({ QUEUE_PREFIX: theirs }), { log })
    try {
      const lineUserId = randomUUID()
      await a.queues.enqueue(
        'identity.fetch-profile',
        { lineUserId },
        { jobId: `profile-${lineUserId}` },
      )
      expect(await redis.keys(`${ours}:identity:*`)).not.toHaveLength(0)
      expect(await b.queues.byName.identity.getJob(`profile-${lineUserId}`)).toBeUndefined()
      expect(await a.queues.byName.identity.getJob(`profile-${lineUserId}`)).toBeDefined()
    } finally {
      await a.queues.byName.identity.obliterate({ force: true })
      await closeDeps(a)
      await closeDeps(b)
    }
  })
})
