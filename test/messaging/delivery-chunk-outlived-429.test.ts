import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { SENDING_LEASE_SECONDS } from '../../src/messaging/delivery-claim.repo.ts'
import { RATE_LIMITED } from '../../src/sandbox/request-pipeline.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import {
  campaign,
  campaignInbox,
  deliveryRows,
  type Friend,
  MULTICAST,
  newFriend,
  playingWorkers,
} from './support.ts'

/** How long the stand-in keeps job A's chunk waiting before its 429 (job B sends meanwhile). */
const A_HELD_MS = 2_000

/**
 * A job that outlived its lease while its new chunk waited for LINE: another job took one of the
 * chunk's rows over and repeated the chunk (LINE delivered it to everyone in it). The first job's
 * own call then gets a rate-limit 429: the chunk's key is not unused, so the rows it still holds
 * must not be rendered again under another key.
 */
describe('a new chunk rate-limited after another job repeated it', () => {
  let k: TestKizuna
  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '0' })
  })
  afterAll(async () => {
    await k?.stopAll()
  })

  it('keeps the key in doubt for the rows the first job still holds', async () => {
    const [a, b] = [await newFriend(k), await newFriend(k)] as [Friend, Friend]
    await playingWorkers(k, async (send) => {
      const ids = await scheduleDeliveries(
        k.deps,
        [a, b].map((f) => campaign(f, { category: 'transactional', displayName: 'お客様' })),
      )
      const [aId, bId] = ids as [string, string]
      const before = k.line.requestsTo('POST', MULTICAST).length
      k.line.failNext({
        method: 'POST',
        path: MULTICAST,
        timeoutMs: A_HELD_MS,
        status: 429,
        body: { message: RATE_LIMITED },
      })
      const jobA = send(ids).catch((e: unknown) => e)
      await eventually(() => expect(k.line.requestsTo('POST', MULTICAST)[before]).toBeDefined())
      // A's lease runs out on b; job B takes b over and repeats the chunk (b's key is in doubt).
      const lapsed = SENDING_LEASE_SECONDS + 60
      await sql`update delivery set updated_at = now() - make_interval(secs => ${lapsed})
        where id = ${bId}`.execute(k.deps.db)
      await send([bId])
      const calls = k.line.requestsTo('POST', MULTICAST).slice(before)
      expect(calls.map((c) => c.status)).toEqual([0, 200])
      await jobA
      expect(calls[0]!.status).toBe(429)

      const [aRow] = await deliveryRows(k, [aId])
      expect(aRow).toMatchObject({ status: 'pending' })
      expect(aRow!.line_first_call_at).not.toBeNull()
      // a's next try repeats the chunk (LINE answers 409): a gets it once.
      await k.deps.db
        .updateTable('delivery')
        .set({ send_after: new Date() })
        .where('id', '=', aId)
        .execute()
      await send([aId])
      expect((await deliveryRows(k, [aId]))[0]!.status).toBe('sent')
      for (const f of [a, b]) expect(campaignInbox(k, f.userId)).toHaveLength(1)
    })
  })
})
