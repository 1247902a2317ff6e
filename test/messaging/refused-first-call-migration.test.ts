import { randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { databaseMigratedTo } from '../support/migrated-database.ts'

const BEFORE = '20261219T090000-add-delivery-email-trying'

/**
 * Rows LINE refused (a 400) kept their key's first call, and `last_error` said it was unused:
 * now the first call alone says it, and the refused rows forget it. A row under way again with
 * the old text keeps it: LINE may have taken its new request.
 */
describe('migration 20261219T100000: rows failed by a LINE 400 forget their first call', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })

  it('clears it on failed rows whose last answer was a 400 only', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const { db } = migrated
    const { id: customerId } = await db
      .insertInto('customer')
      .values({ display_name: null })
      .returning('id')
      .executeTakeFirstOrThrow()
    const firstCall = new Date('2026-12-01T00:00:00Z')
    const row = (status: string, lastError: string) => ({
      customer_id: customerId,
      dedupe_key: `test:${randomUUID()}`,
      kind: 'campaign',
      template_id: 'campaign-sample',
      status,
      attempts: 2,
      last_error: lastError,
      line_first_call_at: firstCall,
    })
    const [refused, unanswered, sending] = await db
      .insertInto('delivery')
      .values([
        row('failed', 'LINE 400: The request body has 1 error(s)'),
        row('failed', 'LINE 500: Internal server error'),
        row('sending', 'LINE 400: The request body has 1 error(s)'),
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
    expect(firstCallOf(refused!.id)).toBeNull()
    expect(firstCallOf(unanswered!.id)).toEqual(firstCall)
    expect(firstCallOf(sending!.id)).toEqual(firstCall)
  })
})
