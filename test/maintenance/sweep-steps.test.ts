import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.ts'
import { createMailer } from '../../src/email/mailer.ts'
import { sweep, sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { scheduleSweeper } from '../../src/platform/workers.ts'
import { createInbox } from '../../src/webhook/inbox.ts'
import { insertWebhookBodies } from '../../src/webhook/webhook.repo.ts'
import { notices } from '../messaging/support.ts'
import { sign } from '../support/harness.ts'
import { backendPid, heldTransaction, lockWaitFor } from '../support/locks.ts'
import { startPrivateDeps, startQueueWorkers } from '../support/private-deps.ts'
import { eventually } from '../support/wait.ts'

// The sweeper's steps each on their own. Webhook events and profiles: sweep.test.ts.

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

type PrivateDeps = Awaited<ReturnType<typeof startPrivateDeps>>

/** A delivery written and never queued (Redis blinked), to a customer with no channel. */
async function unqueuedDelivery(deps: PrivateDeps['deps']): Promise<string> {
  const customer = await deps.db
    .insertInto('customer')
    .defaultValues()
    .returning('id')
    .executeTakeFirstOrThrow()
  const [id] = await notices(deps, [customer.id])
  return id!
}

const waitingDeliveries = async (deps: PrivateDeps['deps']) =>
  (await deps.queues.byName.delivery.getJobs(['wait'])).flatMap(
    (job) => job.data.deliveryIds as string[],
  )

const statusOf = async (deps: PrivateDeps['deps'], webhookEventId: string) =>
  (
    await deps.db
      .selectFrom('webhook_event')
      .select('status')
      .where('webhook_event_id', '=', webhookEventId)
      .executeTakeFirstOrThrow()
  ).status

describe('sweeper steps', () => {
  it('applies an event whose id is no ULID (a ":" in it), and still queues a lost delivery', async () => {
    const { deps, env, line } = await startPrivateDeps(cleanups)
    const user = line.users.create({ displayName: 'Colon Friend' })
    user.friendship = 'friend'
    // LINE signs whatever it sends: an event id that is not LINE's usual ULID is still stored.
    const follow = { ...line.buildEvent('follow', user.userId, {}), webhookEventId: 'evt:1' }
    const body = JSON.stringify(line.envelope([follow]))
    const inbox = createInbox(deps)
    const app = createApp(deps, { inbox, mailer: createMailer(env, deps.db, { sandbox: false }) })
    const res = await app.request('/webhooks/line', {
      method: 'POST',
      headers: { 'x-line-signature': sign(body), 'content-type': 'application/json' },
      body,
    })
    expect(res.status).toBe(200)
    await inbox.drain()
    expect(await statusOf(deps, 'evt:1')).toBe('pending')
    const deliveryId = await unqueuedDelivery(deps)

    await sweepOnce(deps, 0)
    expect(await waitingDeliveries(deps)).toContain(deliveryId)

    startQueueWorkers(cleanups, deps, env, ['webhook', 'identity', 'delivery', 'richmenu'])
    await eventually(async () => {
      expect(await statusOf(deps, 'evt:1')).toBe('done')
      // The work after the follow, queued under the event's id, ran too (its profile).
      const friend = await deps.db
        .selectFrom('line_user')
        .select('display_name')
        .where('line_uid', '=', user.userId)
        .executeTakeFirstOrThrow()
      expect(friend.display_name).toBe('Colon Friend')
    }, 30_000)
  }, 60_000)

  it('goes on with the other steps when one fails, and the sweep job fails naming it', async () => {
    const { deps, line } = await startPrivateDeps(cleanups)
    // A minute on: the rows below are past the sweeper's grace.
    const later = {
      ...deps,
      clock: { now: () => new Date(Date.now() + 60_000) },
    }
    const follow = line.buildEvent('follow', line.users.create().userId, {})
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([follow]))])
    const deliveryId = await unqueuedDelivery(deps)

    // The events step's read waits for a lock (a migration's), and is cancelled.
    let pid = 0
    const held = await heldTransaction(deps.db, async (trx) => {
      pid = await backendPid(trx)
      await sql`lock table webhook_event in access exclusive mode`.execute(trx)
    })
    const run = sweep.run(later, {}, {} as never).catch((e: unknown) => e)
    await lockWaitFor(deps.db, pid)
    await sql`select pg_cancel_backend(pid) from pg_stat_activity
      where ${pid}::int = any(pg_blocking_pids(pid))`.execute(deps.db)
    held.commit()
    await held.committed

    // The job fails naming the step, its error in it (for the job's failure log).
    const error = await run
    expect(error).toBeInstanceOf(AggregateError)
    expect((error as AggregateError).message).toBe('sweeper steps failed: events')
    expect((error as AggregateError).errors).toEqual([
      expect.objectContaining({ message: 'canceling statement due to user request' }),
    ])
    // The delivery step ran all the same.
    expect(await waitingDeliveries(deps)).toEqual([deliveryId])
    const metrics = await deps.metrics.registry.metrics()
    expect(metrics).toContain('kizuna_sweep_step_failures_total{step="events"} 1')

    // The next sweep finds the event.
    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 1, deliveries: 0 })
  }, 60_000)

  it('runs a failed sweep once per interval, not again at once (the next interval is its retry)', async () => {
    const { deps } = await startPrivateDeps(cleanups)
    await scheduleSweeper(deps)
    const jobs = await deps.queues.byName.maintenance.getJobs(['delayed', 'wait'])
    const next = jobs.find((job) => job.name === 'maintenance.sweep')
    // The queue's default is 5 attempts: each failing step would be run, logged and counted
    // five times within seconds.
    expect(next?.opts.attempts).toBe(1)
  })
})
