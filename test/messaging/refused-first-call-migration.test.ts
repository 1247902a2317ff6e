import { afterAll, describe, expect, it } from 'vitest'
import { databaseMigratedTo, legacyDeliveries } from '../support/migrated-database.ts'

const BEFORE = '20261219T110000-add-delivery-email-trying'

/**
 * Rows LINE refused (a 400) kept their key's first call, and `last_error` said it was unused:
 * now the first call alone says it, and the refused rows forget it. A row under way again with
 * the old text keeps it: LINE may have taken its new request.
 */
describe('migration 20261219T120000: rows failed by a LINE 400 forget their first call', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })

  it('clears it on failed rows whose last answer was a 400 only', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const firstCall = new Date('2026-12-01T00:00:00Z')
    const row = (status: string, lastError: string) => ({
      status,
      attempts: 2,
      last_error: lastError,
      line_first_call_at: firstCall,
    })
    const refused = 'LINE 400: The request body has 1 error(s)'
    const rows = await legacyDeliveries(migrated.db, [
      row('failed', refused),
      row('failed', 'LINE 500: Internal server error'),
      row('sending', refused),
    ])

    await migrated.migrateToLatest()

    expect(await rows.firstCalls()).toEqual([null, firstCall, firstCall])
  })
})
