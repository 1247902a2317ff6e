import { randomUUID } from 'node:crypto'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { migrateToLatest } from '../../src/main/migrate.ts'
import { setPendingEmail } from '../../src/orders/order.repo.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { recordPurchase } from '../../src/purchases/purchase.service.ts'
import { identityValuesOf } from '../customers/factories.ts'
import { insertWaitingOrders, makeCustomer, statsOfWaitingOrders } from '../purchases/fixtures.ts'
import { cli } from '../support/cli.ts'
import { cliClockOffset } from '../support/clock-offset.ts'
import { TEST_REDIS_URL } from '../support/env.ts'
import { createPrivateDatabase } from '../support/private-database.ts'

// A database of its own: re-tiering touches every customer, and other test files keep theirs
// under other thresholds.
let privateDb: Awaited<ReturnType<typeof createPrivateDatabase>>
let db: Database
const DAY = 86_400_000
const THRESHOLDS = 'silver:5000,gold:50000'
// Queues of their own too: the relinks the runs queue.
const QUEUE_PREFIX = `test-${randomUUID()}`
const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null })
const richmenuQueue = new Queue('richmenu', { connection: redis, prefix: QUEUE_PREFIX })

beforeAll(async () => {
  privateDb = await createPrivateDatabase()
  db = await createDb(loadEnv({ DATABASE_URL: privateDb.url }), { poolSize: 2 })
  await migrateToLatest(db)
})
afterAll(async () => {
  await db.destroy()
  await privateDb.drop()
  await richmenuQueue.obliterate({ force: true })
  await richmenuQueue.close()
  await redis.quit()
})

const refresh = (env: Record<string, string> = {}, args: string[] = []) =>
  cli(['customers', 'refresh-spend', ...args], {
    DATABASE_URL: privateDb.url,
    TIER_THRESHOLDS: THRESHOLDS,
    QUEUE_PREFIX,
    ...env,
  })
/** The relinks the runs queued for the workers. */
const relinkJobs = async () =>
  (await richmenuQueue.getJobs(['wait'])).filter((j) => j.name === 'richmenu.relink')
const customerRow = (id: string) =>
  db.selectFrom('customer').selectAll().where('id', '=', id).executeTakeFirstOrThrow()

/** A silver customer (8,000 in the last year under THRESHOLDS) with the purchase `daysAgo`. */
async function silverCustomer(daysAgo: number) {
  const c = await makeCustomer(db)
  const env = loadEnv({ DATABASE_URL: privateDb.url, TIER_THRESHOLDS: THRESHOLDS })
  await db.transaction().execute((trx) =>
    recordPurchase(trx, env, {
      channel: 'online',
      source: 'shop',
      externalId: randomUUID(),
      customerId: c.id,
      purchasedAt: new Date(Date.now() - 300 * DAY),
      lines: [{ sku: 'SOFA-1', name: 'Sofa', quantity: 1, unitPrice: 8_000 }],
      total: 8_000,
    }),
  )
  await db
    .updateTable('purchase')
    .set({ purchased_at: new Date(Date.now() - daysAgo * DAY) })
    .where('customer_id', '=', c.id)
    .execute()
  expect(await customerRow(c.id)).toMatchObject({ spend_12m: '8000', tier: 'silver' })
  return c
}

const lastSuccess = async () =>
  (
    await db
      .selectFrom('maintenance_run')
      .select('last_success_at')
      .where('name', '=', 'refresh-spend')
      .executeTakeFirstOrThrow()
  ).last_success_at
/** The database's clock now: a run started after it records itself as at or after it. */
const dbNow = async () => (await sql<{ now: Date }>`select now() as now`.execute(db)).rows[0]!.now

const setLastSuccess = (at: Date) =>
  db
    .updateTable('maintenance_run')
    .set({ last_success_at: at })
    .where('name', '=', 'refresh-spend')
    .execute()

/** An online order of 9,000 `daysAgo` (3) days ago, unmatched, waiting on `pending` (and `email`). */
function waitingOrder(pending: { kind: string; value: string }, email?: string, daysAgo = 3) {
  const env = loadEnv({ DATABASE_URL: privateDb.url, TIER_THRESHOLDS: THRESHOLDS })
  return db.transaction().execute(async (trx) => {
    const recorded = await recordPurchase(trx, env, {
      channel: 'online',
      source: 'shop',
      externalId: randomUUID(),
      customerId: null,
      pendingIdentity: pending,
      purchasedAt: new Date(Date.now() - daysAgo * DAY),
      lines: [{ sku: 'SOFA-1', name: 'Sofa', quantity: 1, unitPrice: 9_000 }],
      total: 9_000,
    })
    if (email) await setPendingEmail(trx, recorded.purchaseId, email)
    return recorded
  })
}

describe('kizuna customers refresh-spend (the nightly maintenance.refresh-spend)', () => {
  it('attaches an order left waiting for an id its customer already holds (a race with the link)', async () => {
    const c = await makeCustomer(db)
    const email = `stranded-${randomUUID()}@example.com`
    await db
      .insertInto('identity')
      .values({ customer_id: c.id, kind: 'email', value: email })
      .execute()
    // As an order batch records it while the email is being attached, neither seeing the other.
    const order = await waitingOrder({ kind: 'email', value: email })

    const run = await refresh()
    expect(run.stdout).toContain('1 waiting purchases attached to customers holding their id')
    const purchase = await db
      .selectFrom('purchase')
      .select(['customer_id', 'points_earned'])
      .where('id', '=', order.purchaseId)
      .executeTakeFirstOrThrow()
    expect(purchase.customer_id).toBe(c.id)
    expect(purchase.points_earned).toBeGreaterThan(0)
    expect(await customerRow(c.id)).toMatchObject({ spend_12m: '9000', tier: 'silver' })
    const ledger = await db
      .selectFrom('points_ledger')
      .select(['delta', 'reason'])
      .where('purchase_id', '=', order.purchaseId)
      .execute()
    expect(ledger).toEqual([{ delta: purchase.points_earned, reason: 'earn' }])

    const again = await refresh()
    expect(again.stdout).not.toContain('waiting purchases attached')
  })

  it('leaves an order waiting for its shop account when the email it waits on is held by a customer with another', async () => {
    const c = await makeCustomer(db)
    const email = `other-shop-${randomUUID()}@example.com`
    await db
      .insertInto('identity')
      .values([
        { customer_id: c.id, kind: 'online_customer', value: `C5-${randomUUID()}` },
        { customer_id: c.id, kind: 'email', value: email },
      ])
      .execute()
    // Recorded while nobody held the email: it waits on shop account C7 and on the email.
    const c7 = `C7-${randomUUID()}`
    const order = await waitingOrder({ kind: 'online_customer', value: c7 }, email)

    const run = await refresh()
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).not.toContain('waiting purchases attached')
    expect(
      await db
        .selectFrom('purchase')
        .select(['customer_id', 'pending_identity_value'])
        .where('id', '=', order.purchaseId)
        .executeTakeFirstOrThrow(),
    ).toEqual({ customer_id: null, pending_identity_value: c7 })
    expect(await customerRow(c.id)).toMatchObject({ purchase_count: 0, points: 0 })
  })

  it("gives a customer who got an email the oldest waiting order's shop account and its orders, never a second one", async () => {
    const c = await makeCustomer(db)
    const t = randomUUID()
    const [email, z, w] = [`late-${t}@example.com`, `Z-${t}`, `W-${t}`]
    await db
      .insertInto('identity')
      .values({ customer_id: c.id, kind: 'email', value: email })
      .execute()
    // Recorded while nobody held the email (or while it was being attached): O1 names shop
    // account Z, O5 shop account W, both the email.
    const o1 = await waitingOrder({ kind: 'online_customer', value: z }, email, 10)
    const o5 = await waitingOrder({ kind: 'online_customer', value: w }, email, 5)

    const run = await refresh()
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('1 waiting purchases attached')
    const purchase = (id: string) =>
      db
        .selectFrom('purchase')
        .select(['customer_id', 'pending_identity_value', 'pending_email'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow()
    expect((await purchase(o1.purchaseId)).customer_id).toBe(c.id)
    expect(await purchase(o5.purchaseId)).toEqual({
      customer_id: null,
      pending_identity_value: w,
      pending_email: email,
    })
    expect(await identityValuesOf(db, c.id, 'online_customer')).toEqual([z])
    expect(await customerRow(c.id)).toMatchObject({ purchase_count: 1, total_spent: '9000' })

    const again = await refresh()
    expect(again.stdout).not.toContain('waiting purchases attached')
    expect((await purchase(o5.purchaseId)).customer_id).toBeNull()
  })

  it('attaches 17,000 purchases waiting on one email in one night, with their points and stats', async () => {
    const c = await makeCustomer(db)
    const email = `bulk-${randomUUID()}@example.com`
    await db
      .insertInto('identity')
      .values({ customer_id: c.id, kind: 'email', value: email })
      .execute()
    const n = 17_000
    await insertWaitingOrders(db, n, { kind: 'email', value: email })

    const run = await refresh()
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain(`${n} waiting purchases attached`)
    expect(await customerRow(c.id)).toMatchObject(statsOfWaitingOrders(n))
    const ledger = await db
      .selectFrom('points_ledger')
      .select([
        (eb) => eb.fn.countAll<string>().as('n'),
        (eb) => eb.fn.sum<string>('delta').as('sum'),
      ])
      .where('customer_id', '=', c.id)
      .executeTakeFirstOrThrow()
    expect(ledger).toEqual({ n: String(n), sum: String(n * 10) })
  })

  it('refreshes spend and tiers even when waiting purchases cannot be attached, and says so', async () => {
    expect((await refresh()).code).toBe(0)
    await setLastSuccess(new Date(Date.now() - 5 * DAY))
    const aged = await silverCustomer(368)
    // The email's holder was erased (by hand, their email left behind): attaching to them is
    // GONE, each night.
    const erased = await makeCustomer(db)
    const email = `erased-${randomUUID()}@example.com`
    await db
      .insertInto('identity')
      .values({ customer_id: erased.id, kind: 'email', value: email })
      .execute()
    await waitingOrder({ kind: 'email', value: email })
    await db
      .updateTable('customer')
      .set({ erased_at: new Date() })
      .where('id', '=', erased.id)
      .execute()
    // And one that can: attached the same night.
    const c = await makeCustomer(db)
    const other = `other-${randomUUID()}@example.com`
    await db
      .insertInto('identity')
      .values({ customer_id: c.id, kind: 'email', value: other })
      .execute()
    await waitingOrder({ kind: 'email', value: other })

    const before = await dbNow()
    const run = await refresh()
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('1 customers updated since')
    expect(run.stdout).toContain('1 waiting purchases attached')
    expect(run.stderr).toContain(`customer ${erased.id} (email)`)
    expect(run.stderr).toContain('erased')
    expect(await customerRow(aged.id)).toMatchObject({ spend_12m: '0', tier: 'regular' })
    expect(await customerRow(c.id)).toMatchObject({ purchase_count: 1 })
    // Recorded as run (not left at five days ago), though one identity's attach failed.
    expect((await lastSuccess()).getTime()).toBeGreaterThanOrEqual(before.getTime())
    // Tried again the next night, and said so again (then put out of the other tests' way).
    expect((await refresh()).stderr).toContain(`customer ${erased.id} (email)`)
    await db.deleteFrom('identity').where('customer_id', '=', erased.id).execute()
  })

  it('takes out, on its first run, purchases that aged out any time before', async () => {
    // Order history imported; the workers first run ten days later: no run recorded yet.
    await db.deleteFrom('maintenance_run').where('name', '=', 'refresh-spend').execute()
    const c = await silverCustomer(370)
    const run = await refresh()
    expect(run.code, run.stderr).toBe(0)
    expect(await customerRow(c.id)).toMatchObject({ spend_12m: '0', tier: 'regular' })
  })

  it('picks up from the last successful run: nights missed are caught up, not skipped', async () => {
    expect((await refresh()).code).toBe(0) // the first run: records itself
    // The last run was five days ago; the purchase left the 12-month window four days ago.
    await setLastSuccess(new Date(Date.now() - 5 * DAY))
    const c = await silverCustomer(369)
    const before = await dbNow()
    const run = await refresh()
    expect(run.stdout).toContain('1 customers updated since')
    expect(await customerRow(c.id)).toMatchObject({ spend_12m: '0', tier: 'regular' })
    expect((await lastSuccess()).getTime()).toBeGreaterThanOrEqual(before.getTime())
  })

  it('never records a run as covering a window it skipped: --since only reaches further back', async () => {
    expect((await refresh()).code).toBe(0)
    // The last run was five days ago; the purchase left the 12-month window three days ago.
    await setLastSuccess(new Date(Date.now() - 5 * DAY))
    const c = await silverCustomer(368)
    // A --since later than the last run (a day ago) once meant a window from there: the purchase
    // was skipped, the run recorded as done until now, and no later run looked back for it.
    const run = await refresh({}, ['--since', new Date(Date.now() - DAY).toISOString()])
    expect(run.code).toBe(0)
    await refresh() // the next plain (nightly) run
    expect(await customerRow(c.id)).toMatchObject({ spend_12m: '0', tier: 'regular' })

    // An earlier day reaches back: a date is the start of that day in the store's time zone.
    const day = new Date(Date.now() - 10 * DAY).toISOString().slice(0, 10)
    const back = await refresh({ TZ_STORE: 'Asia/Tokyo' }, ['--since', day])
    expect(back.stdout).toContain(`since ${new Date(`${day}T00:00:00+09:00`).toISOString()}`)
  })

  it('refuses a --since that is not a real ISO date, or in the future, and changes nothing', async () => {
    expect((await refresh()).code).toBe(0)
    const lastRun = new Date(Date.now() - 5 * DAY)
    await setLastSuccess(lastRun)
    const c = await silverCustomer(368)
    const future = new Date(Date.now() + DAY).toISOString()
    for (const since of ['2099-01-01', future, '12', '2026-02-30', '2026-01-01T00:00:00']) {
      const run = await refresh({}, ['--since', since])
      expect({ since, code: run.code }).toEqual({ since, code: 1 })
      expect(run.stderr).toContain('--since')
      expect(run.stdout).toBe('')
    }
    expect(await customerRow(c.id)).toMatchObject({ spend_12m: '8000', tier: 'silver' })
    expect((await lastSuccess()).getTime()).toBe(lastRun.getTime())
  })

  it("judges --since by the database's clock, as its window, and says when it starts earlier", async () => {
    expect((await refresh()).code).toBe(0)
    const lastRun = new Date(Date.now() - 5 * DAY)
    await setLastSuccess(lastRun)
    // The command's clock an hour ahead of the database's: ten minutes from now is in the future.
    const soon = new Date(Date.now() + 10 * 60_000).toISOString()
    const future = await refresh(cliClockOffset(3_600_000), ['--since', soon])
    expect(future.code).toBe(1)
    expect(future.stderr).toContain(`--since: ${soon} is in the future`)
    expect(await lastSuccess()).toEqual(lastRun)

    // After the last run: the window starts at the last run instead, and the command says why.
    const dayAgo = new Date(Date.now() - DAY).toISOString()
    const later = await refresh({}, ['--since', dayAgo])
    expect(later.code).toBe(0)
    expect(later.stdout).toContain(`customers updated since ${lastRun.toISOString()}`)
    expect(later.stderr).toBe(
      `note: --since ${dayAgo} is after the last successful run, so the window starts at that ` +
        `run (${lastRun.toISOString()}): a run is recorded as covering all since its start, and ` +
        'a later start would leave the purchases that aged out in between unseen\n',
    )
  })

  it('queues a relink when it moved a tier (menus follow the tier), none when it changed nothing', async () => {
    expect((await refresh()).code).toBe(0)
    await richmenuQueue.drain()
    const quiet = await refresh()
    expect(quiet.stdout).toContain('0 customers updated')
    expect(quiet.stdout).not.toContain('rich menus')
    expect(await relinkJobs()).toEqual([])

    // The last run was five days ago; a silver customer's purchase left the window since.
    await setLastSuccess(new Date(Date.now() - 5 * DAY))
    const c = await silverCustomer(369)
    const run = await refresh()
    expect(await customerRow(c.id)).toMatchObject({ tier: 'regular' })
    expect(run.stdout).toContain(
      'rich menus: re-linking queued (the workers move people whose segment changed)',
    )
    expect(await relinkJobs()).toHaveLength(1)
  })

  it('re-tiers every customer once when the tier thresholds change', async () => {
    expect((await refresh()).code).toBe(0)
    const c = await silverCustomer(10)
    const raised = await refresh({ TIER_THRESHOLDS: 'silver:10000,gold:50000' })
    expect(raised.stdout).toMatch(/thresholds changed: [1-9]\d* tiers re-set/)
    expect(await customerRow(c.id)).toMatchObject({ spend_12m: '8000', tier: 'regular' })
    const again = await refresh({ TIER_THRESHOLDS: 'silver:10000,gold:50000' })
    expect(again.stdout).not.toContain('thresholds changed')
    await refresh() // back to THRESHOLDS
    expect(await customerRow(c.id)).toMatchObject({ tier: 'silver' })
  })
})
