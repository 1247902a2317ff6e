import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { RATE_LIMIT_PARKED } from '../../src/messaging/rate-limit-backoff.ts'
import { RATE_LIMITED } from '../../src/sandbox/request-pipeline.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  campaign,
  deliveryRows,
  type Friend,
  MULTICAST,
  newFriend,
  PUSH,
  playingWorkers,
} from './support.ts'

/** LINE_RATE_LIMIT_TRIES here: a delivery is parked at its second rate-limit 429. */
const TRIES = 2

/** The backoff of rate-limited deliveries, row by row (rate-limit-backoff.ts). */
describe('rate-limit 429s counted on each delivery', () => {
  let k: TestKizuna
  beforeAll(async () => {
    k = await startTestKizuna({
      QUIET_HOURS: '',
      MARKETING_WEEKLY_CAP: '0',
      LINE_RATE_LIMIT_TRIES: String(TRIES),
    })
  })
  afterAll(async () => {
    await k?.stopAll()
  })

  const notice = (f: Friend, displayName?: string) =>
    campaign(f, { category: 'transactional', ...(displayName ? { displayName } : {}) })
  const setTries = (id: string, tries: number) =>
    k.deps.db
      .updateTable('delivery')
      .set({ rate_limit_tries: tries })
      .where('id', '=', id)
      .execute()

  it('records the other outcomes when the 429 count cannot be written', async () => {
    const [hot, calm] = [await newFriend(k), await newFriend(k)] as [Friend, Friend]
    await playingWorkers(k, async (send) => {
      const [hotId, calmId] = (await scheduleDeliveries(k.deps, [notice(hot), notice(calm)])) as [
        string,
        string,
      ]
      // One more 429 overflows the count: the statement counting it fails.
      await setTries(hotId, 2_147_483_647)
      k.line.failNext({
        method: 'POST',
        path: PUSH,
        status: 429,
        body: { message: RATE_LIMITED },
        match: (r) => (r.body as { to?: string }).to === hot.userId,
      })
      await send([hotId, calmId]).catch(() => {})

      const [hotRow, calmRow] = await deliveryRows(k, [hotId, calmId])
      expect(calmRow).toMatchObject({ status: 'sent' })
      expect(hotRow).toMatchObject({ status: 'pending' })
    })
  })

  it('parks only the rows of a chunk that reached the limit', async () => {
    const [tired, fresh] = [await newFriend(k), await newFriend(k)] as [Friend, Friend]
    await playingWorkers(k, async (send) => {
      const ids = await scheduleDeliveries(
        k.deps,
        [tired, fresh].map((f) => notice(f, 'みなさま')),
      )
      const [tiredId, freshId] = ids as [string, string]
      await setTries(tiredId, TRIES - 1)
      k.line.failNext({
        method: 'POST',
        path: MULTICAST,
        status: 429,
        body: { message: RATE_LIMITED },
      })
      await send(ids).catch(() => {})

      const [tiredRow, freshRow] = await deliveryRows(k, [tiredId, freshId])
      expect(tiredRow!.status).toBe('failed')
      expect(tiredRow!.last_error).toMatch(RATE_LIMIT_PARKED)
      expect(freshRow!.status).toBe('pending')
      expect(freshRow!.send_after.getTime()).toBeGreaterThan(Date.now())
    })
  })
})
