import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { campaign, deliveryRow, newFriend, playingWorkers, WEEK_MS } from './support.ts'

/**
 * A delivery the weekly cap deferred to R gets a job due at R. That job may fire a moment early
 * (the claim's tolerance) while the database's clock reads just before R: the cap defers it to R
 * again, and its new job must not get the running job's id (BullMQ would drop it, and the
 * delivery would wait for the sweeper).
 */
describe('a delivery the weekly cap defers again to the same time', () => {
  let k: TestKizuna
  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '1' })
  })
  afterAll(async () => {
    await k?.stopAll()
  })

  it('gets a job of its own again', async () => {
    const f = await newFriend(k)
    const queue = k.deps.queues.byName.delivery
    const jobsOf = async (id: string) =>
      (await queue.getJobs(['delayed', 'waiting', 'active', 'completed'])).filter((j) =>
        (j.data as { deliveryIds: string[] }).deliveryIds.includes(id),
      )
    await playingWorkers(k, async (send) => {
      const [first] = (await scheduleDeliveries(k.deps, [campaign(f)])) as [string]
      await send([first])
      expect((await deliveryRow(k, first)).status).toBe('sent')
      const [x] = (await scheduleDeliveries(k.deps, [campaign(f)])) as [string]
      await send([x])
      const deferred = await deliveryRow(k, x)
      expect(deferred.status).toBe('pending')
      expect(deferred.send_after.getTime()).toBeGreaterThan(Date.now() + WEEK_MS / 2)
      const [due] = (await jobsOf(x)).filter((j) => j.id?.includes('-at-'))
      expect(due).toBeDefined()

      // That job runs (its id still taken) and the cap defers x to the same time again.
      await k.deps.db
        .updateTable('delivery')
        .set({ send_after: new Date() })
        .where('id', '=', x)
        .execute()
      await send([x])
      const again = await deliveryRow(k, x)
      expect(again.send_after.getTime()).toBe(deferred.send_after.getTime())
      const later = (await jobsOf(x)).filter((j) => j.id?.includes('-at-') && j.id !== due!.id)
      expect(later).toHaveLength(1)
    })
  })
})
