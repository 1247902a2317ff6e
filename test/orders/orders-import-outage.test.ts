import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { createCustomer } from '../customers/factories.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'
import { startDatabaseProxy } from '../support/frozen-proxy.ts'
import { backendPid, customerLock, heldTransaction, lockWaitFor } from '../support/locks.ts'
import { erasedHolderOf, orderOf } from './order-import-fixtures.ts'

// Postgres going away in the middle of `kizuna import orders`: the import stops and says what
// it saved, rather than reporting the orders after as bad ones.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
  file = await tempFiles('orders-outage')
})
afterAll(async () => {
  await db.destroy()
})

describe('kizuna import orders when Postgres goes away', () => {
  // More orders than two write batches hold (5000 each), then the last batch waits on a
  // customer the test holds, and the connection is cut. `oneByOne`: that batch also has an
  // order the batch cannot write, so it is being written one order at a time.
  for (const oneByOne of [false, true]) {
    it(`stops with what was saved before${oneByOne ? ', writing one order at a time' : ''}`, async () => {
      const source = `shop${randomUUID().slice(0, 8)}`
      const shopId = `shop-${randomUUID()}`
      const email = `buyer-${randomUUID().slice(0, 8)}@example.jp`
      const held = await createCustomer(db, {
        identities: [{ kind: 'online_customer', value: shopId }],
      })
      await createCustomer(db, { identities: [{ kind: 'email', value: email }] })
      await erasedHolderOf(db, `gone-${shopId}`)
      const orders = [
        ...Array.from({ length: 10_300 }, (_, i) => orderOf(source, {}, 100 + i)),
        ...(oneByOne ? [orderOf(source, { externalId: `gone-${shopId}`, email }, 1)] : []),
        orderOf(source, { externalId: shopId }, 2),
        orderOf(source, {}, 3),
      ]
      const ndjson = await file(
        'ndjson',
        orders.map((o) => JSON.stringify(o)),
      )
      const proxy = await startDatabaseProxy(TEST_DATABASE_URL)
      let holder = 0
      const lock = await heldTransaction(db, async (trx) => {
        holder = await backendPid(trx)
        await customerLock(held.id)(trx)
      })
      try {
        const importing = cli(['import', 'orders', ndjson], { DATABASE_URL: proxy.url })
        await lockWaitFor(db, holder)
        proxy.cut()
        const result = await importing

        expect(result.code).toBe(1)
        const stopped =
          /error: the import stopped at line (\d+): Postgres \(DATABASE_URL\) went away or cannot write: /.exec(
            result.stderr,
          )
        expect(stopped, result.stderr).not.toBeNull()
        const line = Number(stopped?.[1])
        // The orders before it were saved, and only they; none after is reported as a bad one.
        const saved = await db
          .selectFrom('purchase')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .where('source', '=', source)
          .executeTakeFirstOrThrow()
        expect(line).toBeGreaterThan(5_000)
        expect(saved.n).toBe(String(line - 1))
        expect(result.stderr).toContain(
          `Saved before line ${line}: created 0, unmatched ${line - 1}, unchanged 0 (skipped 0, ` +
            `busy 0: reported above); the orders from line ${line} on are not saved, or not all. ` +
            'Import the file again once Postgres is back: the orders saved are then counted unchanged',
        )
        expect(result.stderr).not.toMatch(/^line \d+:/m)
      } finally {
        lock.commit()
        await lock.committed
        await proxy.close()
      }
    }, 60_000)
  }
})
