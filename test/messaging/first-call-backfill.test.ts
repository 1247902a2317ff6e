import { randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { databaseMigratedTo } from '../support/migrated-database.ts'

const BEFORE = '20261208T120000-index-coupon-used-purchase'

type MigratedDb = Awaited<ReturnType<typeof databaseMigratedTo>>['db']

/** After the migrations: the first-call time of the i-th inserted row (null: none). */
async function firstCallsOf(db: MigratedDb, rows: { id: string }[]) {
  const after = await db
    .selectFrom('delivery')
    .select(['id', 'line_first_call_at as first'])
    .where(
      'id',
      'in',
      rows.map((r) => r.id),
    )
    .execute()
  return (i: number) => after.find((a) => a.id === rows[i]?.id)?.first ?? null
}

/**
 * Two backfills run in order: the first (20261208T130000) covers only rows with `channel =
 * 'line'`, which the send path writes on sent rows alone; the second (…140000) covers the rows
 * as the send path leaves them (channel set only when sent).
 */
describe('migrations 20261208T130000 and …140000: first-call times for deliveries tried before', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })

  it('gives a LINE delivery already tried its creation time, and leaves the rest alone', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const { db } = migrated

    const { id: customerId } = await db
      .insertInto('customer')
      .values({ display_name: null })
      .returning('id')
      .executeTakeFirstOrThrow()
    const created = new Date('2026-12-01T00:00:00Z')
    const row = (status: string, channel: string | null, attempts: number) => ({
      customer_id: customerId,
      dedupe_key: `test:${randomUUID()}`,
      kind: 'campaign',
      template_id: 'campaign-sample',
      status,
      channel,
      attempts,
      created_at: created,
    })
    const rows = await db
      .insertInto('delivery')
      .values([
        row('failed', 'line', 10), // a push that ran out of retries: may have reached LINE
        row('pending', 'line', 2), // waiting for a retry
        row('failed', 'email', 10), // email: no retry key
        row('pending', null, 0), // never tried
        row('sent', 'line', 1),
      ])
      .returning('id')
      .execute()

    await migrated.migrateToLatest()
    const firstOf = await firstCallsOf(db, rows)
    expect(firstOf(0)).toEqual(created)
    expect(firstOf(1)).toEqual(created)
    expect([firstOf(2), firstOf(3), firstOf(4)]).toEqual([null, null, null])
  })

  it('gives unsent pushes that may have reached LINE their creation time, and no other row', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const { db } = migrated

    const { id: customerId } = await db
      .insertInto('customer')
      .values({ display_name: null })
      .returning('id')
      .executeTakeFirstOrThrow()
    const created = new Date('2026-12-01T00:00:00Z')
    // recordOutcomes sets `channel` only on a `sent` outcome: an unsent row has none.
    const row = (
      status: string,
      attempts: number,
      lastError: string | null,
      pushBody: string | null = null,
    ) => ({
      customer_id: customerId,
      dedupe_key: `test:${randomUUID()}`,
      kind: 'campaign',
      template_id: 'campaign-sample',
      status,
      channel: null,
      attempts,
      last_error: lastError,
      push_body: pushBody,
      created_at: created,
    })
    const body = JSON.stringify({ to: 'U0', messages: [{ type: 'text', text: 'hi' }] })
    const rows = await db
      .insertInto('delivery')
      .values([
        // A push that ran out of retries after 500s (the job's error on the row): may have
        // reached LINE.
        row('failed', 5, '1 of 1 deliveries failed for now'),
        // A push waiting for its retry after a timeout (its body kept for it).
        row('pending', 2, 'LINE timeout', body),
        // Never went to LINE: a template that does not render, an email refused, LINE's 400.
        row('failed', 1, 'template: missing variable'),
        row('failed', 1, 'email: 550 no such user'),
        row('failed', 1, 'LINE 400: bad request'),
        // Held back by the weekly cap: tried, but nothing went out.
        row('pending', 1, null),
      ])
      .returning('id')
      .execute()

    await migrated.migrateToLatest()
    const firstOf = await firstCallsOf(db, rows)
    expect([firstOf(0), firstOf(1)]).toEqual([created, created])
    expect([firstOf(2), firstOf(3), firstOf(4), firstOf(5)]).toEqual([null, null, null, null])
  })
})
