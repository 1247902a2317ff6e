import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ConsentCategory } from '../../src/consent/consent.schemas.ts'
import { setConsent } from '../../src/consent/consent.service.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import type { SendTools } from '../../src/messaging/delivery-send.service.ts'
import { markEmailTrying } from '../../src/messaging/email-claim.repo.ts'
import { createCustomer } from '../customers/factories.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { backendPid, heldTransaction, lockWaitFor } from '../support/locks.ts'
import { type Smtp, startSmtp } from '../support/smtp.ts'
import { testDb } from '../support/test-db.ts'
import { eventually } from '../support/wait.ts'
import {
  deliveryRow,
  emailCustomer,
  emailSettings,
  type Friend,
  newFriend,
  notices,
  pushesTo,
  revokeTransactionalEmail,
  sendJob,
  toolsRendering,
} from './support.ts'

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

  // The mark reads the person's consent for the email in its own statement: a merge committing
  // while it waits removes the merged customer's consent rows, and the mark must not then judge
  // by the defaults (marketing email off, transactional email on).
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

// The mark's statement began with the row on the merged customer; the merge it waited for moved
// the row to the survivor, whose consent and LINE status are what count as the email is about to
// go (the merged customer's were read as of the statement's start).
describe('an email whose customer is merged while its mark waits', () => {
  let smtp: Smtp
  let k: TestKizuna
  beforeAll(async () => {
    smtp = await startSmtp()
    k = await startTestKizuna(emailSettings(smtp.url))
  })
  const mailers: SendTools['mailer'][] = []
  afterAll(async () => {
    for (const mailer of mailers) mailer.close()
    await k?.stopAll()
    await smtp?.close()
  })

  /**
   * A send job on the rows, which, as it renders (after the claim, before the mark), begins
   * merging `mergedId` into `survivorId` and holds the merge's locks until a statement (the
   * email's mark) waits for them, then commits it; `first` run before the merge begins. Once: a
   * later claim renders again.
   */
  async function sendWhileMerging(
    ids: string[],
    survivorId: string,
    mergedId: string,
    first: () => Promise<unknown> = async () => {},
  ) {
    let committed: Promise<void> | undefined
    const tools = toolsRendering(k, async () => {
      if (committed) return
      committed = Promise.resolve()
      await first()
      let pid = 0
      const merge = await heldTransaction(k.deps.db, async (trx) => {
        pid = await backendPid(trx)
        await mergeCustomers(trx, { survivorId, mergedId, reason: 'test' })
      })
      committed = lockWaitFor(k.deps.db, pid).then(() => {
        merge.commit()
        return merge.committed
      })
    })
    mailers.push(tools.mailer)
    await sendJob(k, tools)(ids)
    await committed
  }

  /**
   * The notice, left pending by its mark, went on LINE to the survivor (a claim of its own), once;
   * no email went to `address`.
   */
  async function sentOnLine(id: string, survivor: Friend, address: string) {
    await eventually(async () => {
      expect(await deliveryRow(k, id)).toMatchObject({
        customer_id: survivor.customerId,
        status: 'sent',
        channel: 'line',
        email_trying_at: null,
      })
    })
    expect(pushesTo(k, survivor.userId)).toHaveLength(1)
    expect(smtp.mailsTo(address)).toEqual([])
  }

  it('sends no notice to a survivor who turned transactional email off', async () => {
    const merged = await emailCustomer(k.deps)
    const survivor = await emailCustomer(k.deps)
    await revokeTransactionalEmail(k.deps, survivor.id)
    const [id] = (await notices(k.deps, [merged.id])) as [string]
    await sendWhileMerging([id], survivor.id, merged.id)

    expect(smtp.mailsTo(merged.email)).toEqual([])
    expect(smtp.mailsTo(survivor.email)).toEqual([])
    expect(await deliveryRow(k, id)).toMatchObject({
      customer_id: survivor.id,
      status: 'skipped',
      skip_reason: 'no_transactional_consent_email',
      email_trying_at: null,
    })
  })

  it('sends no email to a survivor LINE reaches: the notice goes on LINE', async () => {
    const merged = await emailCustomer(k.deps)
    const survivor = await newFriend(k)
    const [id] = (await notices(k.deps, [merged.id])) as [string]
    await sendWhileMerging([id], survivor.customerId, merged.id)

    expect(smtp.mailsTo(merged.email)).toEqual([])
    await sentOnLine(id, survivor, merged.email)
  })

  it('does not skip an email its customer refused before the merge: LINE reaches the survivor', async () => {
    const merged = await emailCustomer(k.deps)
    const survivor = await newFriend(k)
    const [id] = (await notices(k.deps, [merged.id])) as [string]
    // Claimed for email; the merged customer then refuses it by email (a skip, judged for them),
    // but the row is the survivor's by its mark, and LINE reaches them.
    await sendWhileMerging([id], survivor.customerId, merged.id, () =>
      revokeTransactionalEmail(k.deps, merged.id),
    )

    expect(smtp.mailsTo(merged.email)).toEqual([])
    await sentOnLine(id, survivor, merged.email)
  })
})
