import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import type { ConsentCategory } from '../../src/consent/consent.schemas.ts'
import { setConsent } from '../../src/consent/consent.service.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { markEmailTrying } from '../../src/messaging/email-claim.repo.ts'
import { createCustomer } from '../customers/factories.ts'
import { backendPid, heldTransaction, lockWaitFor } from '../support/locks.ts'
import { testDb } from '../support/test-db.ts'

// The mark made just before an email goes waits for its customer's lock (an erasure under way is
// seen). A merge holds that lock too, and moves the person's deliveries to the survivor: the row
// is still the job's, and must be marked and sent, not taken for another job's.
const db = testDb()

/** A delivery to the customer, in `sending` under a first claim (attempts 1). */
const claimedDelivery = (customerId: string, category: ConsentCategory = 'transactional') =>
  db()
    .insertInto('delivery')
    .values({
      customer_id: customerId,
      dedupe_key: `mark-merged-${randomUUID()}`,
      kind: 'campaign-sample',
      category,
      template_id: 'campaign-sample',
      status: 'sending',
      attempts: 1,
    })
    .returning('id')
    .executeTakeFirstOrThrow()

describe('marking a claimed email while its customer is merged', () => {
  it('marks the row the merge moved to the survivor', async () => {
    const merged = await createCustomer(db())
    const survivor = await createCustomer(db())
    const row = await claimedDelivery(merged.id)
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

  // The mark reads the person's consent for the email in its own statement, as of its start: a
  // merge committing while it waits removes the merged customer's consent rows, and the mark must
  // not then judge by the defaults (marketing email off, transactional email on).
  const cases: { category: ConsentCategory; granted: boolean; expected: string }[] = [
    { category: 'marketing', granted: true, expected: 'marked' },
    { category: 'transactional', granted: false, expected: 'no_consent' },
  ]
  for (const c of cases) {
    it(`judges a ${c.category} email by its customer's consent, not the defaults, across the merge`, async () => {
      const merged = await createCustomer(db())
      const survivor = await createCustomer(db())
      for (const customer of [merged, survivor]) {
        await setConsent(db(), customer.id, {
          category: c.category,
          channel: 'email',
          granted: c.granted,
          source: 'admin',
        })
      }
      const row = await claimedDelivery(merged.id, c.category)
      let pid = 0
      const merge = await heldTransaction(db(), async (trx) => {
        pid = await backendPid(trx)
        await mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'test' })
      })
      const marking = markEmailTrying(db(), row.id, new Map([[row.id, 1]]))
      await lockWaitFor(db(), pid)
      merge.commit()
      await merge.committed
      expect(await marking).toBe(c.expected)
    })
  }
})
