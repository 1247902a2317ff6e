import { randomUUID } from 'node:crypto'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { TEST_REDIS_URL } from './env.ts'

/**
 * A private QUEUE_PREFIX for CLI runs, and the `richmenu.relink` jobs they queued there (no
 * worker takes them).
 */
export function relinkQueue() {
  const prefix = `test-${randomUUID()}`
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null })
  const queue = new Queue('richmenu', { connection: redis, prefix })
  return {
    env: { QUEUE_PREFIX: prefix },
    async relinkJobs() {
      const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized'])
      return jobs.filter((j) => j.name === 'richmenu.relink')
    },
    async close() {
      await queue.close()
      redis.disconnect()
    },
  }
}
