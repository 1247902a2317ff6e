import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { messageVarsLoaders } from '../../src/main/processors.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  campaign,
  campaignInbox,
  deliveryRows,
  type Friend,
  newFriend,
  PUSH,
  sendJob,
  sendTools,
  WEEK_MS,
} from './support.ts'

/**
 * The weekly cap counts what may reach the person: a delivery of the same batch that sends
 * nothing (its loader finds nothing to send, its template does not render) takes no room, and a
 * request that may already have reached LINE takes its room before any new send of the batch.
 */
describe('the weekly cap and the deliveries of a batch', () => {
  let k: TestKizuna
  let send: ReturnType<typeof sendJob>

  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '1' })
    // The campaign's loader finds nothing to send for a delivery marked `voided` (as the
    // post-purchase loader does for a voided receipt).
    const tools = sendTools(k)
    tools.loaders = {
      ...messageVarsLoaders(k.deps.env),
      'campaign-sample': async (_deps, { vars }) => (vars.voided ? null : vars),
    }
    send = sendJob(k, tools)
  })
  afterAll(async () => {
    await k?.stopAll()
  })
  afterEach(async () => {
    await k.deps.queues.byName.delivery.resume()
  })

  /** Two campaigns to `f` in one batch: the first the claim takes (by id) and the other. */
  async function twoCampaigns(f: Friend) {
    await k.deps.queues.byName.delivery.pause() // the test plays the workers
    const ids = await scheduleDeliveries(k.deps, [campaign(f), campaign(f)])
    const [first, other] = [...ids].sort() as [string, string]
    return { first, other }
  }

  const cases = [
    { name: 'its loader finds nothing to send', status: 'skipped', change: `'{"voided": true}'` },
    // Its variables do not fit the template: it fails at rendering.
    { name: 'its template does not render', status: 'failed', change: `'{"headline": ""}'` },
  ]
  for (const c of cases) {
    it(`a delivery that sends nothing because ${c.name} leaves the room to the other`, async () => {
      const f = await newFriend(k)
      const { first, other } = await twoCampaigns(f)
      await sql`update delivery set vars = vars || ${sql.raw(c.change)}::jsonb
        where id = ${first}`.execute(k.deps.db)

      await send([first, other])

      const [unsent, sent] = await deliveryRows(k, [first, other])
      expect(unsent!.status).toBe(c.status)
      expect(sent!.status).toBe('sent')
      expect(campaignInbox(k, f.userId)).toHaveLength(1)
    })
  }

  it('a push that may have reached LINE takes the room before a new one of the same batch', async () => {
    const f = await newFriend(k)
    // The claim takes the new one first: it must not take the room the retried push holds.
    const { first: fresh, other: retried } = await twoCampaigns(f)
    k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 1 })
    await expect(send([retried])).rejects.toThrow(/failed for now/)

    await send([fresh, retried])

    const [held, sent] = await deliveryRows(k, [fresh, retried])
    expect(sent!.status).toBe('sent')
    expect(held!.status).toBe('pending')
    expect(held!.send_after.getTime()).toBeGreaterThan(Date.now() + WEEK_MS / 2)
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
  })
})
