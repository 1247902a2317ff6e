import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import { markEmailTrying } from '../../src/messaging/email-claim.repo.ts'
import { createCustomer } from '../customers/factories.ts'
import { backendPid, heldTransaction, lockWaitFor } from '../support/locks.ts'
import { testDb } from '../support/test-db.ts'

// The mark made just before an email goes waits for its customer's lock (an erasure under way is
// seen). A merge holds that lock too, and moves the person's deliveries to the survivor: the row
// is still the job's, and must be marked and sent, not taken for another job's.
const db = testDb()

describe('marking a claimed email while its customer is merged', () => {
  it('marks the row the merge moved to the survivor', async () => {
    const merged = await createCustomer(db())
    const survivor = await createCustomer(db())
    const row = await db()
      .insertInto('delivery')
      .values({
        customer_id: merged.id,
        dedupe_key: `mark-merged-${randomUUID()}`,
        kind: 'campaign-sample',
        template_id: 'campaign-sample',
        status: 'sending',
        attempts: 1,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    let pid = 0
    // As a merge: the merged customer locked, its deliveries moved, committed while the mark waits.
    const merge = await heldTransaction(db(), async (trx) => {
      pid = await backendPid(trx)
      await sql`select id from customer where id = ${merged.id} for update`.execute(trx)
      await trx
        .updateTable('delivery')
        .set({ customer_id: survivor.id })
        .where('id', '=', row.id)
        .execute()
    })
    const marking = markEmailTrying(db(), row.id, new Map([[row.id, 1]]))
    await lockWaitFor(db(), pid)
    merge.commit()
    await merge.committed
    expect(await marking).toBe('marked')
    const after = await db()
      .selectFrom('delivery')
      .select(['customer_id', 'email_trying_at'])
      .where('id', '=', row.id)
      .executeTakeFirstOrThrow()
    expect(after.customer_id).toBe(survivor.id)
    expect(after.email_trying_at).not.toBeNull()
  })
})
