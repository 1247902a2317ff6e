import { randomUUID } from 'node:crypto'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/platform/logger.ts'
import { createQueues } from '../../src/platform/queues.ts'
import { TEST_REDIS_URL } from '../support/env.ts'

const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null })
afterAll(() => redis.quit())

const job = () => {
  const lineUserId = randomUUID()
  return { data: { lineUserId }, jobId: `profile-${lineUserId}` }
}

describe('queues.enqueueSoon', () => {
  it("queues concurrent callers' jobs together, and close() sends what is still waiting", async () => {
    const prefix = `test-soon-${randomUUID()}`
    const queues = createQueues(redis, createLogger('silent'), prefix)
    const reader = new Queue('identity', { connection: redis, prefix })
    try {
      const first = [job(), job()]
      const calls = [
        queues.enqueueSoon('identity.fetch-profile', first),
        queues.enqueueSoon('identity.fetch-profile', [job()]),
      ]
      // Nothing has gone yet: the calls wait for company.
      expect(await reader.getWaitingCount()).toBe(0)
      await Promise.all(calls)
      const waiting = await reader.getJobs(['waiting'])
      expect(waiting).toHaveLength(3)
      expect(waiting.map((j) => j.id).sort()).toEqual(
        expect.arrayContaining(first.map((j) => j.jobId)),
      )

      // A bad job fails its own caller only, not the jobs it would have travelled with.
      const good = job()
      const bad = queues.enqueueSoon('identity.fetch-profile', [
        { data: { lineUserId: 'not-a-uuid' }, jobId: 'profile-bad' },
      ])
      const fine = queues.enqueueSoon('identity.fetch-profile', [good])
      await expect(bad).rejects.toThrow()
      await fine
      expect(await reader.getJob(good.jobId)).toBeDefined()
      expect(await reader.getJob('profile-bad')).toBeUndefined()

      // A job handed over just before shutdown is not lost.
      const late = job()
      void queues.enqueueSoon('identity.fetch-profile', [late])
      await queues.close()
      expect((await reader.getJob(late.jobId))?.data).toEqual(late.data)
    } finally {
      await reader.obliterate({ force: true })
      await reader.close()
    }
  })
})
