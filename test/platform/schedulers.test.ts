import { randomUUID } from 'node:crypto'
import { v7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'

let k: TestKizuna
beforeAll(async () => {
  k = await startTestKizuna({ SWEEP_INTERVAL_MS: '45000' })
})
afterAll(async () => {
  await k.stopAll()
})

describe('job schedulers', () => {
  it('workers register the sweeper, the nightly spend refresh, webhook prune, link-row purge and chunk-body forgetting in Redis', async () => {
    const schedulers = await k.deps.queues.byName.maintenance.getJobSchedulers()
    const byKey = Object.fromEntries(schedulers.map((s) => [s.key, s]))
    expect(byKey.sweeper?.every).toBe(45000)
    expect(byKey['refresh-spend']).toMatchObject({ pattern: '15 4 * * *', tz: 'Asia/Tokyo' })
    expect(byKey['prune-webhook-events']).toMatchObject({ pattern: '45 4 * * *', tz: 'Asia/Tokyo' })
    expect(byKey['purge-link-rows']).toMatchObject({ pattern: '50 4 * * *', tz: 'Asia/Tokyo' })
    expect(byKey['forget-chunk-bodies']).toMatchObject({ pattern: '55 4 * * *', tz: 'Asia/Tokyo' })
  })

  it('the prune deletes processed webhook events past retention, keeps pending and recent ones', async () => {
    const prefix = `01PRUNE${randomUUID().replaceAll('-', '').slice(0, 16).toUpperCase()}`
    const DAY = 86_400_000
    const rows = [
      { n: 1, status: 'done', age: 31 },
      { n: 2, status: 'failed', age: 40 },
      { n: 3, status: 'pending', age: 40 },
      { n: 4, status: 'done', age: 29 },
    ]
    await k.deps.db
      .insertInto('webhook_event')
      .values(
        rows.map((r) => ({
          // Its id made when it was received, as uuid_v7() does (the prune reads a range of ids).
          id: v7({ msecs: Date.now() - r.age * DAY }),
          webhook_event_id: `${prefix}${r.n}`,
          type: 'message',
          mode: 'active',
          occurred_at: new Date(Date.now() - r.age * DAY),
          received_at: new Date(Date.now() - r.age * DAY),
          status: r.status,
          payload: JSON.stringify({ type: 'message' }),
        })),
      )
      .execute()
    // As the scheduler would: the job, taken by the test's worker.
    await k.deps.queues.enqueueBulk('maintenance.prune-webhook-events', [
      { data: {}, jobId: `prune-${prefix}` },
    ])
    await eventually(async () => {
      const left = await k.deps.db
        .selectFrom('webhook_event')
        .select('webhook_event_id')
        .where('webhook_event_id', 'like', `${prefix}%`)
        .orderBy('webhook_event_id')
        .execute()
      expect(left.map((r) => r.webhook_event_id)).toEqual([`${prefix}3`, `${prefix}4`])
    })
  })
})
