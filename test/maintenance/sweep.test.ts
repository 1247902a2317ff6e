import { randomUUID } from 'node:crypto'
import { UnrecoverableError, Worker } from 'bullmq'
import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { createMailer } from '../../src/email/mailer.ts'
import { insertLineUser, updateLineUserStatusIfNewer } from '../../src/identity/identity.repo.ts'
import type { QueueName } from '../../src/jobs.ts'
import { createProcessors } from '../../src/main/processors.ts'
import { PROFILE_RETRY_MS, sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { createWorkerRedis } from '../../src/platform/redis.ts'
import { startWorkers } from '../../src/platform/workers.ts'
import { enqueueWebhookEvents } from '../../src/webhook/webhook.enqueue.ts'
import { processWebhookEvent } from '../../src/webhook/webhook.jobs.ts'
import { insertWebhookBodies, lockWebhookEvent } from '../../src/webhook/webhook.repo.ts'
import { heldTransaction, lockWaitOn } from '../support/locks.ts'
import { startPrivateDeps, startQueueWorkers, waitingWebhookJobs } from '../support/private-deps.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

type PrivateDeps = Awaited<ReturnType<typeof startPrivateDeps>>

/** How many stored webhook events are in each status. */
async function eventsByStatus(deps: PrivateDeps['deps']) {
  const rows = await deps.db
    .selectFrom('webhook_event')
    .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
    .groupBy('status')
    .execute()
  return rows.map((r) => ({ status: r.status, n: Number(r.n) }))
}

describe('sweeper', () => {
  it('queues again an event and a profile whose jobs failed without the rows saying so', async () => {
    // Its own database: the sweeper takes every stale row it sees.
    const { deps, env, line } = await startPrivateDeps(cleanups)
    const redis = createWorkerRedis(env.REDIS_URL)
    cleanups.push(async () => redis.disconnect())

    // A follow stored and queued as the inbox does it, and a friend whose profile is missing.
    const follower = line.users.create()
    follower.friendship = 'friend'
    const follow = line.buildEvent('follow', follower.userId, {})
    const friend = line.users.create({ displayName: 'Sweep Friend' })
    friend.friendship = 'friend'
    const friendFollow = line.buildEvent('follow', friend.userId, {})
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([follow, friendFollow]))])
    await enqueueWebhookEvents(deps.queues, [follow.webhookEventId])
    await processWebhookEvent(deps, friendFollow.webhookEventId)
    // The follow's job is still waiting (no worker yet): not queued a second time.
    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 0, profiles: 1 })
    expect(await deps.queues.byName.webhook.getWaitingCount()).toBe(1)

    // Every job so far fails for good, and the rows are not told (as when Postgres is down
    // through every attempt, or a worker crashes twice): the follow stays pending, the
    // profile missing, and BullMQ keeps the failed jobs under their ids for a week.
    const failing = (['webhook', 'identity'] as QueueName[]).map(
      (queue) =>
        new Worker(
          queue,
          async () => {
            throw new UnrecoverableError('lost')
          },
          { connection: redis, prefix: deps.queues.prefix },
        ),
    )
    await eventually(async () => {
      for (const queue of ['webhook', 'identity'] as const) {
        const counts = await deps.queues.byName[queue].getJobCounts('wait', 'active', 'failed')
        expect({ queue, ...counts }).toMatchObject({ queue, wait: 0, active: 0 })
        expect(counts.failed).toBeGreaterThan(0)
      }
    })
    await Promise.all(failing.map((w) => w.close()))

    // The next sweep (an hour on, when a missing profile is asked for again) queues both again.
    const later = { ...deps, clock: { now: () => new Date(Date.now() + PROFILE_RETRY_MS) } }
    expect(await sweepOnce(later, 0)).toMatchObject({ events: 1, profiles: 1 })
    const mailer = createMailer(env, deps.db, { sandbox: false })
    const workers = startWorkers(deps, createProcessors(deps, { mailer }), redis, {
      queues: ['webhook', 'identity'],
    })
    cleanups.push(() => workers.close())
    await eventually(async () => {
      const event = await deps.db
        .selectFrom('webhook_event')
        .select('status')
        .where('webhook_event_id', '=', follow.webhookEventId)
        .executeTakeFirstOrThrow()
      expect(event.status).toBe('done')
      const profile = await deps.db
        .selectFrom('line_user')
        .select('display_name')
        .where('line_uid', '=', friend.userId)
        .executeTakeFirstOrThrow()
      expect(profile.display_name).toBe('Sweep Friend')
    })
  }, 60_000)

  it('finds an event lost long before a backlog, and leaves the backlog alone', async () => {
    const { deps, line } = await startPrivateDeps(cleanups)
    const event = () => line.buildEvent('follow', line.users.create().userId, {})
    const [queued, lost] = [event(), event()]
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([lost]))])
    // Stored a minute ago, and its job never reached Redis (an outage then).
    await deps.db
      .updateTable('webhook_event')
      .set({ received_at: new Date(Date.now() - 60_000) })
      .where('webhook_event_id', '=', lost.webhookEventId)
      .execute()
    // A backlog: a job waiting for a worker since now.
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([queued]))])
    await enqueueWebhookEvents(deps.queues, [queued.webhookEventId])

    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 1 })
    const jobs = await waitingWebhookJobs(deps)
    expect(jobs.sort()).toEqual([[lost.webhookEventId], [queued.webhookEventId]].sort())
  })

  it('queues every event stored through a long Redis outage in one sweep, each once', async () => {
    const { deps, env, line } = await startPrivateDeps(cleanups)
    // Stored while Redis took nothing (the webhook answered 200, no job reached Redis): more
    // than one of the sweeper's reads, in writes whose events share their received_at (a page
    // may end inside such a run). One user's first event and last are far apart.
    const regular = line.users.create().userId
    const unfollow = (userId: string) => line.buildEvent('unfollow', userId, {})
    const writes = [1_200, 1_200, 100].map((n) =>
      Array.from({ length: n }, () => unfollow(line.users.create().userId)),
    )
    const [firstOfUser, lastOfUser] = [unfollow(regular), unfollow(regular)]
    writes[0]!.unshift(firstOfUser)
    writes[2]!.push(lastOfUser)
    for (const events of writes) {
      await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope(events))])
    }
    const stored = writes.flat().map((e) => e.webhookEventId)

    expect(await sweepOnce(deps, 0)).toMatchObject({ events: stored.length })
    const jobs = await waitingWebhookJobs(deps)
    const queued = jobs.flat()
    expect(queued).toHaveLength(stored.length)
    expect(new Set(queued)).toEqual(new Set(stored))
    // The user's events go in one job, to be applied one after the other.
    expect(jobs.find((ids) => ids.includes(firstOfUser.webhookEventId))).toContain(
      lastOfUser.webhookEventId,
    )

    startQueueWorkers(cleanups, deps, env, ['webhook'])
    await eventually(async () => {
      expect(await eventsByStatus(deps)).toEqual([{ status: 'done', n: stored.length }])
    }, 60_000)
  }, 90_000)

  it("queues an outage's events once, however many sweeps run before they are processed", async () => {
    const { deps, env, line } = await startPrivateDeps(cleanups)
    const webhook = deps.queues.byName.webhook
    const unfollow = () => line.buildEvent('unfollow', line.users.create().userId, {})
    const store = async (events: ReturnType<typeof unfollow>[], agoMs: number) => {
      await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope(events))])
      await deps.db
        .updateTable('webhook_event')
        .set({ received_at: new Date(Date.now() - agoMs) })
        .where(
          'webhook_event_id',
          'in',
          events.map((e) => e.webhookEventId),
        )
        .execute()
    }
    // Stored some minutes ago while Redis took nothing: more than one job's worth, the first
    // and the last apart from the rest.
    const [first, last] = [unfollow(), unfollow()]
    const outage = [first, ...Array.from({ length: 1_200 }, unfollow), last]
    await store([first], 700_000)
    await store(outage.slice(1, -1), 600_000)
    await store([last], 500_000)
    // A live event queued as the inbox does, its job waiting through the sweeps below.
    const live = unfollow()
    await store([live], 0)
    await enqueueWebhookEvents(deps.queues, [live.webhookEventId])

    expect(await sweepOnce(deps, 0)).toMatchObject({ events: outage.length })
    const runOrder = async () =>
      (await webhook.getJobs(['wait'], 0, -1, true)).map(
        (job) => (job.data as { webhookEventIds: string[] }).webhookEventIds,
      )
    const jobs = await runOrder()
    expect(jobs).toHaveLength(4)

    // An event lost meanwhile (its job never reached Redis), and sweeps every 30 s before any
    // worker takes a job: the outage's events are not queued again, nor is the lost one yet.
    const lost = unfollow()
    await store([lost], 60_000)
    for (let i = 0; i < 3; i++) {
      expect(await sweepOnce(deps, 0)).toMatchObject({ events: 0 })
    }
    expect(await runOrder()).toEqual(jobs)
    // The outage's jobs go first, the oldest events' first: they happened before the live one.
    expect(jobs[0]).toContain(first.webhookEventId)
    expect(jobs[2]).toContain(last.webhookEventId)
    expect(jobs[3]).toEqual([live.webhookEventId])

    // The last of the outage's jobs held up while it runs (a row lock on its last event): its
    // events are not queued again either.
    const held = await heldTransaction(deps.db, async (trx) => {
      await lockWebhookEvent(trx, last.webhookEventId)
    })
    startQueueWorkers(cleanups, deps, env, ['webhook'])
    await lockWaitOn(deps.db, 'webhook_event')
    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 0 })
    held.commit()
    await held.committed

    await eventually(async () => {
      expect(await webhook.getJobCounts('wait', 'active', 'completed')).toEqual({
        wait: 0,
        active: 0,
        completed: jobs.length,
      })
    }, 60_000)
    // The sweep's jobs done, the next sweep finds the lost event.
    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 1 })
    await eventually(async () => {
      expect(await eventsByStatus(deps)).toEqual([{ status: 'done', n: outage.length + 2 }])
      expect(await webhook.getCompletedCount()).toBe(jobs.length + 1)
    }, 60_000)
  }, 90_000)

  it('asks for every missing profile in one sweep, each once', async () => {
    const { deps } = await startPrivateDeps(cleanups)
    // Friends whose profile jobs never reached Redis, added in one statement (one created_at).
    const friends = await sql<{ id: string }>`
      with c as (insert into customer (id) select gen_random_uuid()
                 from generate_series(1, 1500) returning id)
      insert into line_user (customer_id, line_uid, status, status_changed_at)
      select id, 'U' || md5(id::text), 'friend', now() from c
      returning id`.execute(deps.db)
    const ids = friends.rows.map((r) => r.id)

    // Both sweeps below in the same hour (a profile is asked for once an hour).
    const now = new Date()
    const sweep = () => sweepOnce({ ...deps, clock: { now: () => now } }, 0)
    expect(await sweep()).toMatchObject({ profiles: ids.length })
    const jobs = await deps.queues.byName.identity.getJobs(['wait'])
    const queued = jobs.map((job) => job.data.lineUserId as string)
    expect(queued).toHaveLength(ids.length)
    expect(new Set(queued)).toEqual(new Set(ids))
    // The next sweep finds them again, and their jobs' ids keep them once.
    expect(await sweep()).toMatchObject({ profiles: ids.length })
    expect(await deps.queues.byName.identity.getWaitingCount()).toBe(ids.length)
  })

  it("leaves a friend's follow and unfollow HOT updates: its index of missing profiles does not read the status", async () => {
    // A table of its own: the row's page has room for its new version (HOT needs that too).
    const { deps } = await startPrivateDeps(cleanups)
    const hotUpdates = await deps.db.transaction().execute(async (trx) => {
      const customer = await trx
        .insertInto('customer')
        .defaultValues()
        .returning('id')
        .executeTakeFirstOrThrow()
      const friend = await insertLineUser(trx, {
        customerId: customer.id,
        lineUid: `U${randomUUID().replaceAll('-', '')}`,
        status: 'friend',
        at: new Date(Date.now() - 2_000),
      })
      // An unfollow and a follow again, their profile never fetched.
      expect(
        await updateLineUserStatusIfNewer(trx, friend.id, 'blocked', new Date(Date.now() - 1_000)),
      ).toBe(true)
      expect(await updateLineUserStatusIfNewer(trx, friend.id, 'friend', new Date())).toBe(true)
      const { rows } = await sql<{ n: string }>`
        select pg_stat_get_xact_tuples_hot_updated('line_user'::regclass) as n`.execute(trx)
      return Number(rows[0]!.n)
    })
    // Neither wrote the table's indexes.
    expect(hotUpdates).toBe(2)
  })
})
