import { randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { bareCustomer, databaseMigratedTo } from '../support/migrated-database.ts'

const BEFORE = '20261219T120000-forget-first-call-of-refused'

/**
 * The post-purchase follow-up recommends products (advertising) and is written as `marketing`
 * from now on. Follow-ups written before as `transactional` that may still be sent (due later,
 * waiting for a retry, failed or parked and so open to `deliveries retry`) become `marketing`
 * too, or they would go to people who opted out of marketing, by email without their agreement,
 * in quiet hours and past the cap. What was sent, skipped or cancelled stays as it was.
 */
describe('migration 20261219T130000: post-purchase follow-ups not yet sent become marketing', () => {
  let migrated: Awaited<ReturnType<typeof databaseMigratedTo>> | undefined
  afterAll(async () => {
    await migrated?.close()
  })

  it('changes the follow-ups that may still go, and nothing else', async () => {
    migrated = await databaseMigratedTo(BEFORE)
    const { db } = migrated
    const customerId = await bareCustomer(db)
    const row = (kind: string, status: string) => ({
      customer_id: customerId,
      dedupe_key: `test:${randomUUID()}`,
      kind,
      category: 'transactional',
      template_id: kind === 'post-purchase' ? 'purchase-follow-up' : 'member-card',
      status,
    })
    const statuses = [
      'pending',
      'sending',
      'failed',
      'quota_exceeded',
      'sent',
      'skipped',
      'cancelled',
    ]
    const rows = await db
      .insertInto('delivery')
      .values([
        ...statuses.map((s) => row('post-purchase', s)),
        row('welcome', 'pending'), // a transactional message of another kind
      ])
      .returning('id')
      .execute()

    await migrated.migrateToLatest()

    const after = await db
      .selectFrom('delivery')
      .select(['id', 'category'])
      .where(
        'id',
        'in',
        rows.map((r) => r.id),
      )
      .execute()
    const categoryOf = (i: number) => after.find((a) => a.id === rows[i]!.id)?.category
    expect(rows.map((_, i) => categoryOf(i))).toEqual([
      'marketing', // pending
      'marketing', // sending
      'marketing', // failed: `deliveries retry` may send it
      'marketing', // quota_exceeded: likewise
      'transactional', // sent
      'transactional', // skipped
      'transactional', // cancelled
      'transactional', // the welcome
    ])
  })
})
