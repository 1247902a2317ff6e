import type { QueueName } from '../jobs.ts'
import type { Redis } from './redis.ts'

/**
 * Jobs that wait in their queue behind jobs queued after the rows they hold: a job that failed an
 * attempt (BullMQ holds it back for its backoff, then puts it at the tail of the wait list) and
 * one queued anew for old rows (the events a failed webhook job left). The sweeper, which reads
 * only the head of a backlog, learns of them here. A job is taken out when it ends (by the
 * worker for a retried one) or when the sweeper finds it ended or gone. Kept a week after the
 * last one noted, as failed jobs are.
 */
const KEEP_SECONDS = 604_800

export function jobsBehind(redis: Redis, prefix: string, queue: QueueName) {
  const key = `${prefix}:kizuna:${queue}:behind`
  return {
    async note(jobIds: string[]): Promise<void> {
      if (jobIds.length === 0) return
      const now = Date.now()
      await redis
        .multi()
        .zadd(key, ...jobIds.flatMap((id) => [now, id]))
        .expire(key, KEEP_SECONDS)
        .exec()
    },
    async forget(jobIds: string[]): Promise<void> {
      if (jobIds.length > 0) await redis.zrem(key, ...jobIds)
    },
    /** The first `limit` jobs noted (the oldest first), and whether more are. */
    async list(limit: number): Promise<{ jobIds: string[]; more: boolean }> {
      const ids = await redis.zrange(key, 0, String(limit))
      return { jobIds: ids.slice(0, limit), more: ids.length > limit }
    },
  }
}
