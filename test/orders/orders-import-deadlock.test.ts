import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { recordOrderBatch } from '../../src/orders/order.service.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { ABORTED_RUNS } from '../../src/platform/run-again.ts'
import { createCustomer } from '../customers/factories.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'
import { startDatabaseProxy } from '../support/frozen-proxy.ts'
import {
  backendPid,
  customerLock,
  deadlockingTransaction,
  heldTransaction,
  lockWaitFor,
} from '../support/locks.ts'
import { eventually } from '../support/wait.ts'
import { emailPastMergeChain, type OrderLine, orderOf } from './order-import-fixtures.ts'

// `kizuna import orders` while a transaction takes the same rows the other way round: a batch,
// or an order of a batch written one order at a time, that Postgres aborts in the deadlock is run
// again and written once, never reported as a bad row; one that keeps losing is reported busy.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
  file = await tempFiles('orders-deadlock')
})
afterAll(async () => {
  await db.destroy()
})

/**
 * An order that gives a new shop id to the customer its email names, taking over the order that
 * waited for that id: it locks the customer, then that order's purchase, which `first` of the
 * deadlocking transaction locks. With `oneByOne`, the file first has an order the batch cannot
 * write (emailPastMergeChain; refused one by one): its batch goes one order at a time. `more`:
 * orders after them.
 */
async function scene(opts: { oneByOne: boolean; more?: (source: string) => OrderLine[] }) {
  const source = `shop${randomUUID().slice(0, 8)}`
  const shopId = `shop-${randomUUID()}`
  const email = `buyer-${randomUUID().slice(0, 8)}@example.jp`
  const [waiting] = await recordOrderBatch(db, env, [
    { ...orderOf(source, { externalId: shopId }, 8_000), orderedAt: new Date() },
  ])
  const waitingId = waiting && 'outcome' in waiting ? waiting.outcome.purchaseId : ''
  const customer = await createCustomer(db, { identities: [{ kind: 'email', value: email }] })
  const chained = await emailPastMergeChain(db)
  const orders = [
    ...(opts.oneByOne ? [orderOf(source, { email: chained }, 1_000)] : []),
    orderOf(source, { externalId: shopId, email }, 30_000),
    ...(opts.more?.(source) ?? []),
  ]
  const ndjson = await file(
    'ndjson',
    orders.map((o) => JSON.stringify(o)),
  )
  return {
    source,
    customer,
    waitingId,
    ndjson,
    deadlock: (rounds: number) =>
      deadlockingTransaction(db, {
        first: (trx) =>
          sql`select id from purchase where id = ${waitingId} for update`.execute(trx),
        second: customerLock(customer.id),
        rounds,
      }),
  }
}

const purchasesOf = (source: string) =>
  db
    .selectFrom('purchase')
    .select(['id', 'customer_id', 'total', 'points_earned'])
    .where('source', '=', source)
    .orderBy('total')
    .execute()

type Scene = Awaited<ReturnType<typeof scene>>

const customerOf = (s: Scene) =>
  db
    .selectFrom('customer')
    .select(['points', 'purchase_count', 'total_spent'])
    .where('id', '=', s.customer.id)
    .executeTakeFirstOrThrow()

/** The order is the customer's, with the one that waited: each purchase and its points once. */
async function expectImportedOnce(s: Scene) {
  expect(await purchasesOf(s.source)).toEqual([
    { id: s.waitingId, customer_id: s.customer.id, total: 8_000, points_earned: 80 },
    { id: expect.any(String), customer_id: s.customer.id, total: 30_000, points_earned: 300 },
  ])
  const ledger = await db
    .selectFrom('points_ledger')
    .select(['delta', 'reason'])
    .where('customer_id', '=', s.customer.id)
    .orderBy('delta')
    .execute()
  expect(ledger).toEqual([
    { delta: 80, reason: 'earn' },
    { delta: 300, reason: 'earn' },
  ])
  expect(await customerOf(s)).toEqual({ points: 380, purchase_count: 2, total_spent: '38000' })
}

describe('kizuna import orders deadlocked by a concurrent transaction', () => {
  for (const { oneByOne, rounds, summary } of [
    { oneByOne: true, rounds: 1, summary: 'skipped 1' },
    // Aborted twice as a batch: the third run writes it.
    { oneByOne: false, rounds: 2, summary: 'skipped 0' },
  ]) {
    it(`runs ${oneByOne ? 'an order written one at a time' : 'a batch'} again when Postgres aborted it, and imports it once`, async () => {
      const s = await scene({ oneByOne })
      const other = await s.deadlock(rounds)

      const result = await cli(['import', 'orders', s.ndjson])
      expect(await other.done).toBe(rounds)
      expect(result.stdout).toContain(`orders: created 1, unmatched 0, unchanged 0, ${summary}\n`)
      expect(result.stderr).not.toMatch(/busy|deadlock/)
      await expectImportedOnce(s)
    })
  }

  it('reports an order Postgres kept aborting as busy, writes nothing of it, and imports it on the next run', async () => {
    const s = await scene({ oneByOne: true })
    const other = await s.deadlock(Number.POSITIVE_INFINITY)

    const busy = await cli(['import', 'orders', s.ndjson])
    other.end()
    // Its run with the others, then ABORTED_RUNS on its own.
    expect(await other.done, busy.stderr).toBe(1 + ABORTED_RUNS)
    expect(busy.code).toBe(2) // an order busy: not saved
    expect(busy.stdout, busy.stderr).toContain(
      'orders: created 0, unmatched 0, unchanged 0, skipped 1, busy 1\n',
    )
    expect(busy.stderr).toContain(
      "line 2: busy: this order's customer was being changed by another task (an account link, " +
        'a register, another import) each time it was saved, so it was not; import the file again',
    )
    expect(await purchasesOf(s.source)).toEqual([
      { id: s.waitingId, customer_id: null, total: 8_000, points_earned: 0 },
    ])
    expect(await customerOf(s)).toEqual({ points: 0, purchase_count: 0, total_spent: '0' })
    const shopIds = await db
      .selectFrom('identity')
      .select('value')
      .where('customer_id', '=', s.customer.id)
      .where('kind', '=', 'online_customer')
      .execute()
    expect(shopIds).toEqual([])

    const again = await cli(['import', 'orders', s.ndjson])
    expect(again.stdout, again.stderr).toContain(
      'orders: created 1, unmatched 0, unchanged 0, skipped 1\n',
    )
    await expectImportedOnce(s)
  })

  it('says what it saved, the order it ran again included, when Postgres goes away after it', async () => {
    const shopId = `shop-${randomUUID()}`
    const held = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: shopId }],
    })
    const s = await scene({
      oneByOne: true,
      more: (source) => [orderOf(source, { externalId: shopId }, 2), orderOf(source, {}, 3)],
    })
    const proxy = await startDatabaseProxy(TEST_DATABASE_URL)
    const other = await s.deadlock(1)
    // The order after the one run again waits for this customer, and Postgres goes away.
    let holder = 0
    const lock = await heldTransaction(db, async (trx) => {
      holder = await backendPid(trx)
      await customerLock(held.id)(trx)
    })
    try {
      const importing = cli(['import', 'orders', s.ndjson], { DATABASE_URL: proxy.url })
      expect(await other.done).toBe(1)
      await eventually(async () => expect(await purchasesOf(s.source)).toHaveLength(2))
      await lockWaitFor(db, holder)
      proxy.cut()
      const result = await importing

      expect(result.code).toBe(1)
      expect(result.stderr).toMatch(/^line 1: /m)
      expect(result.stderr).toContain(
        'error: the import stopped at line 3: Postgres (DATABASE_URL) went away or cannot write: ',
      )
      expect(result.stderr).toContain(
        'Saved before line 3: created 1, unmatched 0, unchanged 0 (skipped 1, busy 0: reported above)',
      )
      await expectImportedOnce(s)
    } finally {
      lock.commit()
      await lock.committed
      await proxy.close()
    }
  })
})
