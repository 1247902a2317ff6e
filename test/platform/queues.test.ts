import { randomUUID } from 'node:crypto'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/platform/logger.ts'
import { createQueues } from '../../src/platform/queues.ts'
import { createProducerRedis } from '../../src/platform/redis.ts'
import {
  enqueueWebhookEvents,
  enqueueWebhookEventsByUser,
} from '../../src/webhook/webhook.enqueue.ts'
import { TEST_REDIS_URL } from '../support/env.ts'
import { startFrozenProxy } from '../support/frozen-proxy.ts'

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
      // The reader's first command waits for its client to be ready (round trips of its own):
      // done now, its count below goes out before the batch's 20 ms are up, however busy the
      // machine (it failed when they were not).
      expect(await reader.getWaitingCount()).toBe(0)
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

  it('a job id BullMQ would refuse fails its own caller, not the batch it would join', async () => {
    const prefix = `test-soon-${randomUUID()}`
    const queues = createQueues(redis, createLogger('silent'), prefix)
    const reader = new Queue('identity', { connection: redis, prefix })
    try {
      const good = job()
      const lineUserId = randomUUID()
      const calls = [
        queues.enqueueSoon('identity.fetch-profile', [{ data: { lineUserId }, jobId: 'p:1' }]),
        queues.enqueueSoon('identity.fetch-profile', [{ data: { lineUserId }, jobId: '123' }]),
        queues.enqueueSoon('identity.fetch-profile', [{ data: { lineUserId }, jobId: '' }]),
        queues.enqueueSoon('identity.fetch-profile', [good]),
      ]
      const results = await Promise.allSettled(calls)
      expect(results.map((r) => r.status)).toEqual([
        'rejected',
        'rejected',
        'rejected',
        'fulfilled',
      ])
      expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/jobId/)
      expect(await reader.getJobs(['waiting'])).toHaveLength(1)
      expect((await reader.getJob(good.jobId))?.data).toEqual(good.data)
      await expect(
        queues.enqueue('identity.fetch-profile', { lineUserId }, { jobId: 'a:b' }),
      ).rejects.toThrow(/jobId/)
    } finally {
      await queues.close()
      await reader.obliterate({ force: true })
      await reader.close()
    }
  })

  it('gives up after a few seconds when Redis stops answering, and close() does not hang', async () => {
    const target = new URL(TEST_REDIS_URL)
    const proxy = await startFrozenProxy({
      host: target.hostname,
      port: Number(target.port || 6379),
    })
    const partitioned = createProducerRedis(`redis://127.0.0.1:${proxy.port}`)
    const queues = createQueues(partitioned, createLogger('silent'), `test-soon-${randomUUID()}`)
    try {
      await queues.enqueueSoon('identity.fetch-profile', [job()])
      proxy.freeze()
      const outcome = await queues.enqueueSoon('identity.fetch-profile', [job()]).then(
        () => 'queued',
        (err: unknown) => String(err),
      )
      expect(outcome).toMatch(/timed out/)
      void queues.enqueueSoon('identity.fetch-profile', [job()]).catch(() => {})
      // Waits for the flushes under way, which give up: it would hang (the test time out) if not.
      await queues.close()
    } finally {
      partitioned.disconnect()
      await proxy.close()
    }
  })
})

describe('webhook event job ids', () => {
  it('queues any event id LINE signs, each job once, a ULID readable in its job id', async () => {
    const prefix = `test-event-ids-${randomUUID()}`
    const queues = createQueues(redis, createLogger('silent'), prefix)
    const reader = new Queue('webhook', { connection: redis, prefix })
    try {
      const ulid = '01FZ74A0TDDPYRVKNK77XKC3ZR'
      const odd = ['evt:1', 'a,b', 'a', 'b', `${ulid}-sweep-1`, '1234567890']
      const all = [ulid, ...odd]
      // Each alone, and all in one group (as the inbox groups a flush), each twice (an enqueue
      // tried again): BullMQ keeps the first of each id.
      for (let i = 0; i < 2; i++) {
        for (const id of all) await enqueueWebhookEvents(queues, [id])
        await enqueueWebhookEvents(queues, all)
      }
      await enqueueWebhookEvents(queues, [ulid], { cause: 'sweep-1' })
      // A group of two is not the one event whose id joins them.
      await enqueueWebhookEventsByUser(queues, [
        { webhook_event_id: 'a', user_id: 'u' },
        { webhook_event_id: 'b', user_id: 'u' },
      ])

      const jobs = await reader.getJobs(['waiting'])
      const ids = jobs.map((j) => j.id!)
      expect(jobs).toHaveLength(all.length + 3)
      expect(ids).toContain(`webhook-event-${ulid}`)
      expect(ids).toContain(`webhook-event-${ulid}-sweep-1`)
      expect(ids.every((id) => !id.includes(':'))).toBe(true)
      expect(jobs.flatMap((j) => j.data.webhookEventIds).sort()).toEqual(
        [...all, ...all, ulid, 'a', 'b'].sort(),
      )
    } finally {
      await queues.close()
      await reader.obliterate({ force: true })
      await reader.close()
    }
  })
})
