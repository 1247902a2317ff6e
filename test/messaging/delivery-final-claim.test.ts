import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jobIds } from '../../src/jobs.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import { lockInSpace } from '../../src/platform/advisory-locks.ts'
import { RATE_LIMITED } from '../../src/sandbox/request-pipeline.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { heldTransaction } from '../support/locks.ts'
import { pgAdmin } from '../support/pg-admin.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import { eventually } from '../support/wait.ts'
import {
  campaign,
  campaignInbox,
  deliveryRows,
  newFriend,
  PUSH,
  sendJob,
  waitForStatus,
} from './support.ts'

/**
 * A send job's last try whose claim fails (a deadlock, a statement or lock timeout, no
 * connection) took none of its rows. Its final failure failed every pending row it named that
 * an earlier try had touched, though an earlier try may have handed some to a job of their own
 * (a rate-limited row whose wait has ended, an email not started in its send window): that job
 * then found them failed and sent nothing. Now it fails none, and the sweeper queues them.
 */
describe('a send job whose last claim fails', () => {
  let k: TestKizuna
  let dropDatabase: () => Promise<void>

  beforeAll(async () => {
    // A database of its own: the test sweeps, and the claim's lock wait gives up after 1 s.
    const database = await createPrivateDatabase()
    dropDatabase = database.drop
    const name = new URL(database.url).pathname.slice(1)
    await pgAdmin(database.url, `alter database "${name}" set lock_timeout = '1s'`)
    k = await startTestKizuna({ DATABASE_URL: database.url, QUIET_HOURS: '' })
  })
  afterAll(async () => {
    await k?.stopAll()
    await dropDatabase?.()
  })

  it('fails none of its rows, and the sweeper queues them again', async () => {
    const f = await newFriend(k)
    const queue = k.deps.queues.byName.delivery
    await queue.pause() // the test plays the workers until the last try
    const [left, handedOn] = (
      await insertDeliveries(k.deps.db, [
        campaign(f, { displayName: `${f.displayName} A` }),
        campaign(f, { displayName: `${f.displayName} B` }),
      ])
    ).map((r) => r.id) as [string, string]
    // An earlier try of the job left one for its retry (LINE answered 500)...
    k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 1 })
    await expect(sendJob(k)([left])).rejects.toThrow(/failed for now/)
    // ...and the other was handed to a job of its own (a rate-limit 429), whose wait has ended.
    k.line.failNext({
      method: 'POST',
      path: PUSH,
      status: 429,
      count: 1,
      body: { message: RATE_LIMITED },
      headers: { 'retry-after': '3600' },
    })
    await sendJob(k)([handedOn])
    await sql`update delivery set send_after = now() where id = ${handedOn}`.execute(k.deps.db)
    expect((await deliveryRows(k, [left, handedOn])).map((r) => [r.status, r.attempts])).toEqual([
      ['pending', 1],
      ['pending', 1],
    ])

    // Another connection holds the customer's weekly-cap lock: the claim gives up after 1 s.
    const lock = await heldTransaction(k.deps.db, (trx) =>
      lockInSpace(trx, 'marketingCap', f.customerId),
    )
    try {
      // The job's last try (a job of one try: its first is its last).
      const job = await queue.add(
        'messaging.send-deliveries',
        { deliveryIds: [left, handedOn] },
        { jobId: `${jobIds.deliveries([left, handedOn])}-last`, attempts: 1 },
      )
      await queue.resume()
      await eventually(async () => expect(await job.getState()).toBe('failed'), 10_000)
      expect((await queue.getJob(job.id!))?.failedReason).toMatch(/lock timeout/)
    } finally {
      lock.commit()
      await lock.committed
    }

    const rows = await deliveryRows(k, [left, handedOn])
    expect(rows.map((r) => r.status)).toEqual(['pending', 'pending'])
    expect(campaignInbox(k, f.userId)).toHaveLength(0)
    // Not lost: the sweeper finds them (the job's retries are over) and they are sent, once.
    await sweepOnce(k.deps, 0)
    await waitForStatus(k, [left, handedOn], 'sent', 10_000)
    expect(campaignInbox(k, f.userId)).toHaveLength(2)
  })
})
