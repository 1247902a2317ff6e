import { randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { createMailer } from '../../src/email/mailer.ts'
import { jobIds } from '../../src/jobs.ts'
import { createLineLimiters, messageVarsLoaders } from '../../src/main/processors.ts'
import { SWEEP_GRACE_MS, sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { createSendDeliveries } from '../../src/messaging/delivery.jobs.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import { enqueueDeliveries } from '../../src/messaging/delivery.service.ts'
import { processWebhookEvent } from '../../src/webhook/webhook.jobs.ts'
import { insertWebhookBodies } from '../../src/webhook/webhook.repo.ts'
import { notices } from '../messaging/support.ts'
import { startPrivateDeps, startQueueWorkers } from '../support/private-deps.ts'
import { eventually } from '../support/wait.ts'

// The sweeper and unsent deliveries. Webhook events and profiles: sweep.test.ts.

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

type PrivateDeps = Awaited<ReturnType<typeof startPrivateDeps>>

/** A friend whose welcome is sent and whose delivery jobs are gone: nothing of theirs is unfinished. */
async function friendWithNothingUnfinished(
  deps: PrivateDeps['deps'],
  line: PrivateDeps['line'],
): Promise<string> {
  const friend = line.users.create()
  friend.friendship = 'friend'
  const follow = line.buildEvent('follow', friend.userId, {})
  await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([follow]))])
  await processWebhookEvent(deps, follow.webhookEventId)
  await deps.db.updateTable('delivery').set({ status: 'sent' }).execute()
  await deps.queues.byName.delivery.drain(true)
  const { customer_id } = await deps.db
    .selectFrom('line_user')
    .select('customer_id')
    .where('line_uid', '=', friend.userId)
    .executeTakeFirstOrThrow()
  return customer_id
}

/** Notices to the customer, written in one statement (`agoMs` ago) and not queued. */
async function writtenNotices(
  deps: PrivateDeps['deps'],
  customerId: string,
  count: number,
  agoMs = 0,
) {
  const ids = await notices(deps, Array(count).fill(customerId))
  const at = new Date(Date.now() - agoMs)
  await deps.db
    .updateTable('delivery')
    .set({ updated_at: at, send_after: at })
    .where('id', 'in', ids)
    .execute()
  return ids
}

/** The delivery ids of each job waiting for a worker, in the order they run. */
const waitingDeliveryJobs = async (deps: PrivateDeps['deps']) =>
  (await deps.queues.byName.delivery.getJobs(['wait'], 0, -1, true)).map(
    (job) => job.data.deliveryIds as string[],
  )

describe('sweeper, deliveries', () => {
  it('queues a lost delivery while another waits in the queue, and leaves that one to its job', async () => {
    const { deps, line } = await startPrivateDeps(cleanups)
    const customerId = await friendWithNothingUnfinished(deps, line)
    // Both written a minute ago; one's job waits behind a backlog (no worker here), the other's
    // enqueue was lost in a Redis blip.
    const [waiting, lost] = await writtenNotices(deps, customerId, 2, 60_000)
    await enqueueDeliveries(deps.queues, [{ id: waiting! }])

    expect(await sweepOnce(deps, 0)).toMatchObject({ deliveries: 1 })
    // The lost one goes first (it has waited longest); the waiting one is not queued again.
    expect(await waitingDeliveryJobs(deps)).toEqual([[lost], [waiting]])
    // Sweeps before any worker takes a job queue nothing more.
    expect(await sweepOnce(deps, 0)).toMatchObject({ deliveries: 0 })
    expect(await waitingDeliveryJobs(deps)).toEqual([[lost], [waiting]])
  })

  it("leaves a campaign's waiting jobs alone, and queues a delivery lost before they were queued", async () => {
    const { deps, line } = await startPrivateDeps(cleanups)
    const customerId = await friendWithNothingUnfinished(deps, line)
    const lost = await writtenNotices(deps, customerId, 1, 60_000)
    // A campaign queued just now, in jobs of several deliveries, waits for the workers.
    const campaign = await writtenNotices(deps, customerId, 250)
    await enqueueDeliveries(
      deps.queues,
      campaign.map((id) => ({ id })),
    )
    const jobs = await waitingDeliveryJobs(deps)
    expect(jobs).toHaveLength(3)

    // Sweeps a minute on, the campaign still waiting: only the delivery lost before it is queued.
    const later = { ...deps, clock: { now: () => new Date(Date.now() + 60_000) } }
    expect(await sweepOnce(later)).toMatchObject({ deliveries: 1 })
    expect(await waitingDeliveryJobs(deps)).toEqual([lost, ...jobs])
    expect(await sweepOnce(later)).toMatchObject({ deliveries: 0 })
    expect(await waitingDeliveryJobs(deps)).toEqual([lost, ...jobs])
  })

  it('queues every unsent delivery in one sweep, each once', async () => {
    const { deps, env, line } = await startPrivateDeps(cleanups)
    const customerId = await friendWithNothingUnfinished(deps, line)
    // Written in one statement (one updated_at) and never queued (Redis down meanwhile).
    const rows = await insertDeliveries(
      deps.db,
      Array.from({ length: 1_500 }, (_, i) => ({
        dedupeKey: `sweep-backlog:${randomUUID()}`,
        kind: 'notice',
        category: 'transactional' as const,
        customerId,
        content: { messages: [{ type: 'text' as const, text: `お知らせ ${i}` }] },
      })),
    )
    const ids = rows.map((r) => r.id)

    expect(await sweepOnce(deps, 0)).toMatchObject({ deliveries: ids.length })
    const jobs = await deps.queues.byName.delivery.getJobs(['wait'])
    const queued = jobs.flatMap((job) => job.data.deliveryIds as string[])
    expect(queued).toHaveLength(ids.length)
    expect(new Set(queued)).toEqual(new Set(ids))
    // The next sweep, before any worker took a job, leaves them to their jobs.
    expect(await sweepOnce(deps, 0)).toMatchObject({ deliveries: 0 })
    expect(await deps.queues.byName.delivery.getWaitingCount()).toBe(jobs.length)

    startQueueWorkers(cleanups, deps, env, ['delivery'])
    await eventually(async () => {
      const sent = await deps.db
        .selectFrom('delivery')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('id', 'in', ids)
        .where('status', '=', 'sent')
        .executeTakeFirstOrThrow()
      expect(Number(sent.n)).toBe(ids.length)
    }, 60_000)
  }, 90_000)

  it('leaves a delivery waiting for its retry after a LINE 5xx alone until that retry is overdue', async () => {
    const { deps, env, line } = await startPrivateDeps(cleanups)
    // Only the delivery below is unfinished, and no job waits (no worker here).
    const customerId = await friendWithNothingUnfinished(deps, line)
    const [row] = await insertDeliveries(deps.db, [
      {
        dedupeKey: `sweep-test:${randomUUID()}`,
        kind: 'notice',
        category: 'transactional',
        customerId,
        content: { messages: [{ type: 'text', text: 'お知らせ' }] },
      },
    ])
    const id = row!.id

    // The job's sixth try meets a LINE 500: BullMQ tries again within 64 s (2 s doubling).
    await enqueueDeliveries(deps.queues, [{ id }])
    const job = (await deps.queues.byName.delivery.getJob(jobIds.deliveries([id])))!
    await job.remove()
    job.attemptsMade = 5
    line.failNext({ method: 'POST', path: '/v2/bot/message/push', status: 500, count: 1 })
    const tools = {
      mailer: createMailer(env, deps.db, { sandbox: false }),
      limiters: createLineLimiters(deps),
      loaders: messageVarsLoaders(env),
    }
    const send = createSendDeliveries(tools)
    await expect(
      send.run(deps, { deliveryIds: [id] }, { job, worker: {} as never, token: 'test' }),
    ).rejects.toThrow('failed for now')

    const at = (ms: number) => ({ ...deps, clock: { now: () => new Date(Date.now() + ms) } })
    // Sweeps while the retry is still to come queue nothing.
    for (const ms of [SWEEP_GRACE_MS + 1_000, 40_000, 60_000]) {
      expect(await sweepOnce(at(ms))).toMatchObject({ deliveries: 0 })
    }
    expect(await deps.queues.byName.delivery.getJobCounts('wait', 'delayed')).toEqual({
      wait: 0,
      delayed: 0,
    })
    // Its retry overdue (its job lost with Redis): queued again.
    expect(await sweepOnce(at(64_000 + SWEEP_GRACE_MS + 2_000))).toMatchObject({ deliveries: 1 })
  })
})
