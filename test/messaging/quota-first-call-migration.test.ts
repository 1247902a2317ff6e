import { afterAll, describe, expect, it } from 'vitest'
import { databaseMigratedTo, legacyDeliveries } from '../support/migrated-database.ts'

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
    const firstCall = new Date('2026-12-01T00:00:00Z')
    const row = (status: string) => ({ status, attempts: 2, line_first_call_at: firstCall })
    const chunk = (body: string | null) =>
      db.insertInto('multicast_request').values({ body }).returning('id').executeTakeFirstOrThrow()
    const stored = await chunk('{"to":["U1"],"messages":[{"type":"text","text":"hi"}]}')
    const dropped = await chunk(null)
    const rows = await legacyDeliveries(db, [
      row('quota_exceeded'),
      row('failed'),
      row('pending'),
      // A chunk's request stays stored: it goes again under its key, or not at all.
      { ...row('quota_exceeded'), multicast_request_id: stored.id },
      { ...row('quota_exceeded'), multicast_request_id: dropped.id },
      { ...row('quota_exceeded'), push_body: '{"to":"U1","messages":[]}' },
    ])

    await migrated.migrateToLatest()

    // quota, failed, pending, in a stored chunk, in a dropped chunk, with its push kept.
    expect(await rows.firstCalls()).toEqual([
      null,
      firstCall,
      firstCall,
      firstCall,
      null,
      firstCall,
    ])
  })
})
