import { randomUUID } from 'node:crypto'
import { Worker } from 'bullmq'
import { afterAll, describe, expect, it } from 'vitest'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { createWorkerRedis } from '../../src/platform/redis.ts'
import { enqueueWebhookEvents } from '../../src/webhook/webhook.enqueue.ts'
import { insertWebhookBodies } from '../../src/webhook/webhook.repo.ts'
import { startPrivateDeps } from '../support/private-deps.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** Private deps with `count` follows stored a minute ago, each never processed. */
async function lostFollows(count: number) {
  const { deps, env, line } = await startPrivateDeps(cleanups)
  const follows = Array.from({ length: count }, () =>
    line.buildEvent('follow', line.users.create().userId, {}),
  )
  await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope(follows))])
  await deps.db
    .updateTable('webhook_event')
    .set({ received_at: new Date(Date.now() - 60_000) })
    .execute()
  // A worker that takes jobs only when told to (getNextJob), and never finishes them.
  const redis = createWorkerRedis(env.REDIS_URL)
  const worker = new Worker('webhook', null, {
    connection: redis,
    prefix: deps.queues.prefix,
    autorun: false,
  })
  cleanups.push(async () => {
    await worker.close(true)
    redis.disconnect()
  })
  const token = randomUUID()
  const take = async () => {
    const job = await worker.getNextJob(token)
    if (!job) throw new Error('no job waiting')
    return job
  }
  const ids = follows.map((e) => e.webhookEventId)
  return { deps, ids, take, token }
}

describe('sweeper, with jobs under way', () => {
  it('queues nothing while one of its own jobs runs, however many others run after it', async () => {
    const { deps, ids, take } = await lostFollows(3)
    const [, ...live] = ids
    // Two of them arrived just now: their jobs are the inbox's.
    await deps.db
      .updateTable('webhook_event')
      .set({ received_at: new Date() })
      .where('webhook_event_id', 'in', live)
      .execute()
    // The sweep's job for the oldest is taken first, then two jobs of the inbox's.
    expect(await sweepOnce(deps, 30_000)).toMatchObject({ events: 1 })
    await take()
    for (const id of live) {
      await enqueueWebhookEvents(deps.queues, [id])
      await take()
    }
    expect(await deps.queues.byName.webhook.getActiveCount()).toBe(3)

    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 0 })
    expect(await deps.queues.byName.webhook.getJobCounts('wait', 'active')).toEqual({
      wait: 0,
      active: 3,
    })
  })

  it('queues nothing again while its job waits for a retry', async () => {
    const { deps, take, token } = await lostFollows(1)
    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 1 })
    // Its first attempt failed: BullMQ holds it back (delayed) until the retry.
    const job = await take()
    await job.moveToFailed(new Error('Postgres went away'), token)
    const counts = () => deps.queues.byName.webhook.getJobCounts('wait', 'active', 'delayed')
    expect(await counts()).toEqual({ wait: 0, active: 0, delayed: 1 })

    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 0 })
    expect(await counts()).toEqual({ wait: 0, active: 0, delayed: 1 })
  })

  it('leaves alone an event whose inbox job waits for a retry', async () => {
    const { deps, ids, take, token } = await lostFollows(1)
    await enqueueWebhookEvents(deps.queues, ids)
    const job = await take()
    await job.moveToFailed(new Error('Postgres went away'), token)

    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 0 })
    expect(await deps.queues.byName.webhook.getJobCounts('wait', 'delayed')).toEqual({
      wait: 0,
      delayed: 1,
    })
  })
})
