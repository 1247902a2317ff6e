import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { sweep, sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import { insertWebhookBodies } from '../../src/webhook/webhook.repo.ts'
import { backendPid, heldTransaction, lockWaitFor } from '../support/locks.ts'
import { startPrivateDeps } from '../support/private-deps.ts'

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
  const [row] = await insertDeliveries(deps.db, [
    {
      dedupeKey: `sweep-steps:${randomUUID()}`,
      kind: 'notice',
      category: 'transactional',
      customerId: customer.id,
      content: { messages: [{ type: 'text', text: 'お知らせ' }] },
    },
  ])
  return row!.id
}

const waitingDeliveries = async (deps: PrivateDeps['deps']) =>
  (await deps.queues.byName.delivery.getJobs(['wait'])).flatMap(
    (job) => job.data.deliveryIds as string[],
  )

describe('sweeper steps', () => {
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
})
