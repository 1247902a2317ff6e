import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { makeCustomer } from '../purchases/fixtures.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'

let db: Database
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }), { poolSize: 2 })
})
afterAll(async () => {
  await db.destroy()
})

async function parked(
  customerId: string,
  status: string,
  kind: string,
  lastError?: string,
  firstCallHoursAgo?: number,
) {
  const row = await db
    .insertInto('delivery')
    .values({
      dedupe_key: `retry-test:${randomUUID()}`,
      kind,
      category: 'marketing',
      customer_id: customerId,
      template_id: 'campaign-sample',
      vars: JSON.stringify({}),
      status,
      last_error: lastError ?? null,
      line_first_call_at:
        firstCallHoursAgo === undefined
          ? null
          : new Date(Date.now() - firstCallHoursAgo * 3600_000),
      send_after: new Date(Date.now() + 3_600_000),
    })
    .returning(['id', 'line_retry_key'])
    .executeTakeFirstOrThrow()
  return row
}
const statusOf = async (id: string) =>
  await db
    .selectFrom('delivery')
    .select(['status', 'line_retry_key', 'send_after', 'line_first_call_at'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow()

describe('kizuna deliveries retry', () => {
  it('puts quota_exceeded deliveries of a kind back to pending, keeping their retry keys', async () => {
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    const c = await makeCustomer(db)
    const quota = await parked(c.id, 'quota_exceeded', kind)
    const failed = await parked(c.id, 'failed', kind, 'LINE 400: invalid')
    const otherKind = await parked(c.id, 'quota_exceeded', `${kind}-other`)
    const erased = await makeCustomer(db)
    await db
      .updateTable('customer')
      .set({ erased_at: new Date() })
      .where('id', '=', erased.id)
      .execute()
    const ofErased = await parked(erased.id, 'quota_exceeded', kind)

    const run = await cli(['deliveries', 'retry', '--kind', kind])
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^1 quota_exceeded deliveries back to pending/)
    const after = await statusOf(quota.id)
    expect(after.status).toBe('pending')
    expect(after.line_retry_key).toBe(quota.line_retry_key)
    expect(after.send_after.getTime()).toBeLessThanOrEqual(Date.now())
    expect((await statusOf(failed.id)).status).toBe('failed')
    expect((await statusOf(otherKind.id)).status).toBe('quota_exceeded')
    expect((await statusOf(ofErased.id)).status).toBe('quota_exceeded')
  })

  it('retries failed ones on request, never a reply or email whose outcome is unknown', async () => {
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    const c = await makeCustomer(db)
    const failed = await parked(c.id, 'failed', kind, 'LINE 400: invalid')
    const unknown = await parked(c.id, 'failed', kind, 'reply outcome unknown: timeout')
    const email = await parked(c.id, 'failed', kind, 'email outcome unknown: Timeout')
    const run = await cli(['deliveries', 'retry', '--status', 'failed', '--kind', kind])
    expect(run.stdout).toMatch(/^1 failed deliveries back to pending/)
    expect((await statusOf(failed.id)).status).toBe('pending')
    expect((await statusOf(unknown.id)).status).toBe('failed')
    expect((await statusOf(email.id)).status).toBe('failed')
  })

  it('leaves failed ones whose request may have reached LINE over 23 hours ago, and says so', async () => {
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    const c = await makeCustomer(db)
    const unknown = 'LINE 500: Internal server error'
    const expired = await parked(c.id, 'failed', kind, unknown, 25)
    const expiredToo = await parked(c.id, 'failed', kind, '3 of 3 deliveries failed for now', 24)
    const young = await parked(c.id, 'failed', kind, unknown, 22)
    // Refused by LINE (days ago): the outcome forgot its key's first call, LINE took nothing.
    const refused = await parked(c.id, 'failed', kind, 'LINE 400: invalid')
    const template = await parked(c.id, 'failed', kind, 'template: bad vars')
    // Its template failed on a retry, after a request that timed out: LINE may have taken that.
    const templateAfterCall = await parked(c.id, 'failed', kind, 'template: bad vars', 72)
    const neverCalled = await parked(c.id, 'failed', kind, 'loader: timeout')
    // The quota's 429 to the first request under the key: LINE took nothing (no first call kept).
    const quota = await parked(c.id, 'quota_exceeded', kind, 'monthly limit')
    // ...to a retry after a request that timed out: LINE may have taken that.
    const quotaAfterCall = await parked(c.id, 'quota_exceeded', kind, 'monthly limit', 24 * 30)

    const run = await cli(['deliveries', 'retry', '--status', 'failed', '--kind', kind])
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^4 failed deliveries back to pending/)
    expect(run.stdout).toContain(
      '3 failed deliveries left as they are: their request may have reached LINE more than ' +
        '23 hours ago, and sending again could deliver twice',
    )
    for (const row of [expired, expiredToo, templateAfterCall]) {
      expect((await statusOf(row.id)).status).toBe('failed')
    }
    for (const row of [young, refused, template, neverCalled]) {
      expect((await statusOf(row.id)).status).toBe('pending')
    }
    // LINE took nothing under a refused key: its 24 hours start with the next request.
    expect((await statusOf(refused.id)).line_first_call_at).toBeNull()
    expect((await statusOf(young.id)).line_first_call_at).not.toBeNull()
    // Parked by the quota, they go again when it renews, but for one whose key may be taken.
    const again = await cli(['deliveries', 'retry', '--kind', kind])
    expect(again.stdout).toMatch(/^1 quota_exceeded deliveries back to pending/)
    expect(again.stdout).toContain(
      '1 quota_exceeded delivery left as it is: its request may have reached LINE more than ' +
        '23 hours ago',
    )
    expect(await statusOf(quota.id)).toMatchObject({ status: 'pending', line_first_call_at: null })
    expect((await statusOf(quotaAfterCall.id)).status).toBe('quota_exceeded')
  })

  it('refuses a kind no delivery has (a typo), naming the kinds that have parked ones', async () => {
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    const c = await makeCustomer(db)
    const quota = await parked(c.id, 'quota_exceeded', kind)
    const run = await cli(['deliveries', 'retry', '--kind', `${kind}x`])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(
      new RegExp(
        `^error: --kind: no delivery is of kind "${kind}x"; kinds with quota_exceeded deliveries: .+`,
      ),
    )
    expect((await statusOf(quota.id)).status).toBe('quota_exceeded')
    // A kind that exists with nothing parked is no mistake: nothing to do.
    const none = await cli(['deliveries', 'retry', '--status', 'failed', '--kind', kind])
    expect(none.code).toBe(0)
    expect(none.stdout).toMatch(/^0 failed deliveries back to pending/)
  })

  it('refuses an unknown status, naming the option, and changes nothing', async () => {
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    const c = await makeCustomer(db)
    const quota = await parked(c.id, 'quota_exceeded', kind)
    const run = await cli(['deliveries', 'retry', '--status', 'sent', '--kind', kind])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('--status: must be one of quota_exceeded, failed (got sent)')
    expect((await statusOf(quota.id)).status).toBe('quota_exceeded')
  })
})
