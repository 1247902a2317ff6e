import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { cli } from '../support/cli.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  campaign,
  campaignInbox,
  deliveryRows,
  type Friend,
  MULTICAST,
  newFriend,
  PUSH,
  playingWorkers,
  QUOTA_EXCEEDED,
  type sendJob,
} from './support.ts'

/**
 * A monthly-quota 429 says LINE took nothing only for the first request under a key. A retry of
 * a request that got a 5xx (LINE may have delivered it) answered with the quota's 429 is still in
 * doubt: parked, it keeps what it stored, and `deliveries retry` repeats that request under its
 * key (or leaves it once the key is too old), never a new rendering or a new chunk's key.
 */
describe('a quota 429 to a request that may have reached LINE before', () => {
  let k: TestKizuna

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '' })
  })
  afterAll(async () => {
    await k?.stopAll()
  })

  /**
   * The deliveries' request gets a 500 after LINE delivered it, then the quota's 429 on its retry:
   * parked as quota_exceeded.
   */
  async function deliveredThenQuota(send: ReturnType<typeof sendJob>, ids: string[], path: string) {
    k.line.failNext({ method: 'POST', path, status: 500, count: 1, carriedOut: true })
    await expect(send(ids)).rejects.toThrow(/failed for now/)
    k.line.failNext({
      method: 'POST',
      path,
      status: 429,
      count: 1,
      body: { message: QUOTA_EXCEEDED },
    })
    await send(ids)
    for (const row of await deliveryRows(k, ids)) expect(row.status).toBe('quota_exceeded')
  }

  const retryParked = async (kind: string) => {
    const run = await cli(['deliveries', 'retry', '--status', 'quota_exceeded', '--kind', kind])
    expect(run.code).toBe(0)
    return run.stdout
  }

  it('a chunk goes again as stored, under its key: nobody gets it twice', async () => {
    const friends = [await newFriend(k), await newFriend(k)]
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    await playingWorkers(k, async (send) => {
      const ids = await scheduleDeliveries(
        k.deps,
        friends.map((f) => ({ ...campaign(f, { displayName: 'お客様' }), kind })),
      )
      await deliveredThenQuota(send, ids, MULTICAST)
      await retryParked(kind)
      await send(ids)

      for (const row of await deliveryRows(k, ids)) expect(row.status).toBe('sent')
      for (const f of friends) expect(chunkMessages(f)).toHaveLength(1)
    })
  })

  it('a push parked until LINE forgot its key is left, not rendered and sent anew', async () => {
    const f = await newFriend(k)
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    await playingWorkers(k, async (send) => {
      const [id] = (await scheduleDeliveries(k.deps, [{ ...campaign(f), kind }])) as [string]
      await deliveredThenQuota(send, [id], PUSH)
      // The quota renews weeks later: LINE has long forgotten the key.
      await sql`update delivery set line_first_call_at = line_first_call_at - interval '20 days'
        where id = ${id}`.execute(k.deps.db)
      for (const entry of k.line.context.state.retryKeys.values()) entry.at -= 20 * 24 * 3600_000
      const said = await retryParked(kind)
      await send([id])

      expect(campaignInbox(k, f.userId)).toHaveLength(1)
      expect(said).toContain('1 quota_exceeded delivery left as it is')
    })
  })

  const chunkMessages = (f: Friend) =>
    k.line.inbox(f.userId).filter((m) => String(m.message.altText).startsWith('お客様 様へ'))
})
