import { randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { databaseMigratedTo } from '../support/migrated-database.ts'

const BEFORE = '20261216T090000-webhook-event-unsend-index'

/**
 * Rows parked by the monthly quota before a quota 429 to a repeated request was kept in doubt
 * had their pushes dropped: they keep the old reading (LINE took nothing), so `deliveries retry`
 * sends them as new, not fails them with nothing stored to repeat. A chunk's rows kept its
 * request: sent as new they would join a new chunk under a new key, the old one perhaps
 * delivered, so they keep their first call and go again as stored (or not at all).
 */
describe('migration 20261216T100000: quota-parked rows forget their first call', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })

  it('clears it on quota_exceeded rows whose request is not stored only', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const { db } = migrated
    const { id: customerId } = await db
      .insertInto('customer')
      .values({ display_name: null })
      .returning('id')
      .executeTakeFirstOrThrow()
    const firstCall = new Date('2026-12-01T00:00:00Z')
    const row = (status: string) => ({
      customer_id: customerId,
      dedupe_key: `test:${randomUUID()}`,
      kind: 'campaign',
      template_id: 'campaign-sample',
      status,
      attempts: 2,
      line_first_call_at: firstCall,
    })
    const chunk = (body: string | null) =>
      db.insertInto('multicast_request').values({ body }).returning('id').executeTakeFirstOrThrow()
    const stored = await chunk('{"to":["U1"],"messages":[{"type":"text","text":"hi"}]}')
    const dropped = await chunk(null)
    const [quota, failed, pending, inChunk, chunkGone, pushKept] = await db
      .insertInto('delivery')
      .values([
        row('quota_exceeded'),
        row('failed'),
        row('pending'),
        // A chunk's request stays stored: it goes again under its key, or not at all.
        { ...row('quota_exceeded'), multicast_request_id: stored.id },
        { ...row('quota_exceeded'), multicast_request_id: dropped.id },
        { ...row('quota_exceeded'), push_body: '{"to":"U1","messages":[]}' },
      ])
      .returning('id')
      .execute()

    await migrated.migrateToLatest()

    const after = await db
      .selectFrom('delivery')
      .select(['id', 'line_first_call_at'])
      .where('customer_id', '=', customerId)
      .execute()
    const firstCallOf = (id: string) => after.find((r) => r.id === id)?.line_first_call_at
    expect(firstCallOf(quota!.id)).toBeNull()
    expect(firstCallOf(chunkGone!.id)).toBeNull()
    expect(firstCallOf(inChunk!.id)).toEqual(firstCall)
    expect(firstCallOf(pushKept!.id)).toEqual(firstCall)
    expect(firstCallOf(failed!.id)).toEqual(firstCall)
    expect(firstCallOf(pending!.id)).toEqual(firstCall)
  })
})
