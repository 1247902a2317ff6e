import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { createCustomer } from '../customers/factories.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'
import { cliReadOnly, cliTimingOutOnce, expectStoppedAt } from '../support/import-stops.ts'
import { customerLock, heldTransaction } from '../support/locks.ts'
import { orderOf } from './order-import-fixtures.ts'

// `kizuna import orders` against a Postgres that cannot write (a primary that failed over: the
// connection is on a read-only server now), and one that gives up on a statement (a lock or
// statement timeout while another task holds the order's customer).

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
  file = await tempFiles('orders-unavailable')
})
afterAll(async () => {
  await db.destroy()
})

const purchasesOf = (source: string) =>
  db
    .selectFrom('purchase')
    .select(['customer_id', 'total'])
    .where('source', '=', source)
    .orderBy('total')
    .execute()

/** A customer with a shop id, and a file of an order of theirs (line 1) and an unmatched one. */
async function scene() {
  const source = `shop${randomUUID().slice(0, 8)}`
  const shopId = `shop-${randomUUID()}`
  const customer = await createCustomer(db, {
    identities: [{ kind: 'online_customer', value: shopId }],
  })
  const ndjson = await file('ndjson', [
    JSON.stringify(orderOf(source, { externalId: shopId }, 1_000)),
    JSON.stringify(orderOf(source, {}, 2_000)),
  ])
  return { source, customer, ndjson }
}

describe('kizuna import orders when Postgres cannot write', () => {
  it('stops at the first order, saying Postgres cannot write, rather than reporting every order as bad', async () => {
    const { source, ndjson } = await scene()
    const result = await cliReadOnly(['import', 'orders', ndjson])

    expectStoppedAt(
      result,
      1,
      'created 0, unmatched 0, unchanged 0 (skipped 0, busy 0: reported above)',
    )
    expect(result.stderr).toContain('read-only transaction')
    expect(result.stderr).not.toMatch(/^line \d+:/m)
    expect(await purchasesOf(source)).toEqual([])
  })
})

describe('kizuna import orders when Postgres gives up on a statement', () => {
  for (const setting of ['lock_timeout', 'statement_timeout']) {
    it(`reports an order that hit the ${setting} each time as busy, and saves the others`, async () => {
      const { source, customer, ndjson } = await scene()
      const lock = await heldTransaction(db, async (trx) => {
        await customerLock(customer.id)(trx)
      })
      try {
        const result = await cli(['import', 'orders', ndjson], {
          PGOPTIONS: `-c ${setting}=200ms`,
        })

        expect(result.code, result.stderr).toBe(2) // an order busy: not saved
        expect(result.stdout).toContain(
          'orders: created 0, unmatched 1, unchanged 0, skipped 0, busy 1\n',
        )
        expect(result.stderr).toContain(
          'line 1: busy: Postgres gave up on this order (a lock or statement timeout) each time ' +
            'it was saved, so it was not; import the file again',
        )
        expect(await purchasesOf(source)).toEqual([{ customer_id: null, total: 2_000 }])
      } finally {
        lock.commit()
        await lock.committed
      }
    })
  }

  it('runs an order that timed out again, and saves it once', async () => {
    const { source, customer, ndjson } = await scene()
    const result = await cliTimingOutOnce(
      db,
      ['import', 'orders', ndjson],
      customerLock(customer.id),
    )

    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain('orders: created 1, unmatched 1, unchanged 0, skipped 0\n')
    expect(result.stderr).toBe('')
    expect(await purchasesOf(source)).toEqual([
      { customer_id: customer.id, total: 1_000 },
      { customer_id: null, total: 2_000 },
    ])
  })
})
