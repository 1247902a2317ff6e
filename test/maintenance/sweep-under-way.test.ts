import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { createMailer } from '../../src/email/mailer.ts'
import { jobIds } from '../../src/jobs.ts'
import { createProcessors } from '../../src/main/processors.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { jobsBehind } from '../../src/platform/jobs-behind.ts'
import { createWorkerRedis } from '../../src/platform/redis.ts'
import { startWorkers } from '../../src/platform/workers.ts'
import { enqueueWebhookEvents } from '../../src/webhook/webhook.enqueue.ts'
import { insertWebhookBodies } from '../../src/webhook/webhook.repo.ts'
import { manualWorker, startPrivateDeps, startQueueWorkers } from '../support/private-deps.ts'
import { eventually } from '../support/wait.ts'

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
  const { take, token } = manualWorker(cleanups, deps, env, 'webhook')
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

  it('leaves alone an event whose job failed once and waits again, behind a backlog, for its retry', async () => {
    const { deps, env, line } = await startPrivateDeps(cleanups)
    // A follow stored a minute ago and queued then; new friends cannot be written for now (a
    // trigger, as a bug or a lock would).
    const follow = line.buildEvent('follow', line.users.create().userId, {})
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([follow]))])
    const minuteAgo = Date.now() - 60_000
    await deps.db
      .updateTable('webhook_event')
      .set({ received_at: new Date(minuteAgo) })
      .execute()
    const webhook = deps.queues.byName.webhook
    const ids = [follow.webhookEventId]
    // Its retry a minute after the failure, so that it waits while the workers below stop.
    await webhook.add(
      'webhook.process-events',
      { webhookEventIds: ids },
      {
        jobId: jobIds.webhookEvents(ids),
        timestamp: minuteAgo,
        backoff: { type: 'fixed', delay: 60_000 },
      },
    )
    await sql`create function refuse() returns trigger language plpgsql as
      $$ begin raise exception 'line_user is locked'; end $$`.execute(deps.db)
    await sql`create trigger refuse before insert on line_user
      for each row execute function refuse()`.execute(deps.db)

    // Kizuna's worker runs it: its first attempt fails, and BullMQ holds it back for its retry.
    const redis = createWorkerRedis(env.REDIS_URL)
    cleanups.push(async () => redis.disconnect())
    const mailer = createMailer(env, deps.db, { sandbox: false })
    const workers = startWorkers(deps, createProcessors(deps, { mailer }), redis, {
      queues: ['webhook'],
    })
    await eventually(async () => expect(await webhook.getDelayedCount()).toBe(1))
    await workers.close()

    // Meanwhile a burst of webhooks (a backlog), and then its retry is due: BullMQ puts it at
    // the tail of the wait list, behind the burst.
    const burst = Array.from({ length: 3 }, () =>
      line.buildEvent('follow', line.users.create().userId, {}),
    )
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope(burst))])
    for (const event of burst) await enqueueWebhookEvents(deps.queues, [event.webhookEventId])
    await (await webhook.getJob(jobIds.webhookEvents(ids)))!.promote()
    const waiting = await webhook.getJobs(['wait'], 0, -1, true)
    expect(waiting.map((job) => job.data.webhookEventIds)).toEqual([
      ...burst.map((e) => [e.webhookEventId]),
      ids,
    ])

    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 0 })
    expect(await webhook.getWaitingCount()).toBe(burst.length + 1)

    // New friends can be written again: the retry applies the follow, and is no longer noted.
    await sql`drop trigger refuse on line_user`.execute(deps.db)
    startQueueWorkers(cleanups, deps, env, ['webhook'])
    await eventually(async () => {
      expect(await webhook.getCompletedCount()).toBe(burst.length + 1)
      const noted = await jobsBehind(deps.redis, deps.queues.prefix, 'webhook').list(10)
      expect(noted.jobIds).toEqual([])
    })
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
