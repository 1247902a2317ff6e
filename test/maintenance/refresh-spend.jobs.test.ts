import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { refreshSpend } from '../../src/maintenance/refresh-spend.jobs.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { recordPurchase } from '../../src/purchases/purchase.service.ts'
import { makeCustomer } from '../purchases/fixtures.ts'
import { startPrivateDeps } from '../support/private-deps.ts'

// The nightly refresh takes out of spend_12m what aged past 365 days since its last run. Purchases
// age by the database's clock (now() in SQL): the run's window and the time it records must come
// from that clock too. With the app's clock ahead, purchases aging out in the gap were never
// taken out.

const DAY = 86_400_000
const cleanups: (() => Promise<void>)[] = []
let deps: Deps
beforeAll(async () => {
  // A database of its own: the first run re-tiers every customer.
  ;({ deps } = await startPrivateDeps(cleanups, { TIER_THRESHOLDS: 'silver:5000,gold:50000' }))
})
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

const dbNow = async () =>
  (await sql<{ now: Date }>`select now() as now`.execute(deps.db)).rows[0]!.now.getTime()
const lastRun = async () =>
  (
    await deps.db
      .selectFrom('maintenance_run')
      .select('last_success_at')
      .where('name', '=', 'refresh-spend')
      .executeTakeFirstOrThrow()
  ).last_success_at

describe('maintenance.refresh-spend', () => {
  it("takes out a purchase that aged out between the database's clock and an app clock ahead of it", async () => {
    const ahead = { ...deps, clock: { now: () => new Date(Date.now() + 10 * 60_000) } }
    const c = await makeCustomer(deps.db)
    // Inside the window tonight; it ages out two minutes from now, by the database's clock.
    await deps.db.transaction().execute((trx) =>
      recordPurchase(trx, deps.env, {
        channel: 'online',
        source: 'shop',
        externalId: randomUUID(),
        customerId: c.id,
        purchasedAt: new Date(Date.now() - 365 * DAY + 2 * 60_000),
        lines: [{ sku: 'SOFA-1', quantity: 1, unitPrice: 60_000 }],
        total: 60_000,
      }),
    )
    const customer = () =>
      deps.db
        .selectFrom('customer')
        .select(['spend_12m', 'tier'])
        .where('id', '=', c.id)
        .executeTakeFirstOrThrow()
    expect(await customer()).toEqual({ spend_12m: '60000', tier: 'gold' })

    await refreshSpend.run(ahead, {}, undefined as never)
    expect(await customer()).toEqual({ spend_12m: '60000', tier: 'gold' })
    // The run is recorded at the database's time, not the app's ten minutes ahead.
    expect((await lastRun()).getTime()).toBeLessThanOrEqual(await dbNow())

    // A day passes: every stored time moves a day back (the purchase, the last run).
    await deps.db
      .updateTable('purchase')
      .set({ purchased_at: sql`purchased_at - interval '1 day'` })
      .where('customer_id', '=', c.id)
      .execute()
    await deps.db
      .updateTable('maintenance_run')
      .set({ last_success_at: sql`last_success_at - interval '1 day'` })
      .where('name', '=', 'refresh-spend')
      .execute()
    await refreshSpend.run(ahead, {}, undefined as never)
    expect(await customer()).toEqual({ spend_12m: '0', tier: 'regular' })
  })

  it('queues a relink for each run, two runs on one UTC date too', async () => {
    const relinks = async () =>
      (await deps.queues.byName.richmenu.getJobs(['wait', 'delayed', 'prioritized'])).filter(
        (job) => job.name === 'richmenu.relink',
      )
    const before = (await relinks()).length
    const at = (iso: string) => ({ ...deps, clock: { now: () => new Date(iso) } })
    // A night's run held up until 10:00 in Tokyo, then the next night's at 04:15 (19:15 UTC):
    // both on 2026-12-08 in UTC.
    await refreshSpend.run(at('2026-12-08T01:00:00Z'), {}, undefined as never)
    await refreshSpend.run(at('2026-12-08T19:15:00Z'), {}, undefined as never)
    expect((await relinks()).length).toBe(before + 2)
  })
})
