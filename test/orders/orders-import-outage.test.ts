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
import { emailPastMergeChain, orderOf } from './order-import-fixtures.ts'

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
  // order the batch cannot write (emailPastMergeChain), so it is being written one order at a
  // time.
  for (const oneByOne of [false, true]) {
    it(`stops with what was saved before${oneByOne ? ', writing one order at a time' : ''}`, async () => {
      const source = `shop${randomUUID().slice(0, 8)}`
      const shopId = `shop-${randomUUID()}`
      const held = await createCustomer(db, {
        identities: [{ kind: 'online_customer', value: shopId }],
      })
      const buyer = `buyer-${randomUUID().slice(0, 8)}@example.jp`
      await createCustomer(db, { identities: [{ kind: 'email', value: buyer }] })
      const chained = await emailPastMergeChain(db)
      // A bad line before the stop and one after it, read while the last batch is written.
      const lines = [
        orderOf(source, { email: buyer }, 5),
        '{ not json',
        ...Array.from({ length: 10_300 }, (_, i) => orderOf(source, {}, 100 + i)),
        ...(oneByOne ? [orderOf(source, { email: chained }, 1)] : []),
        orderOf(source, { externalId: shopId }, 2),
        orderOf(source, {}, 3),
        '{ not json either',
      ]
      const ndjson = await file(
        'ndjson',
        lines.map((o) => (typeof o === 'string' ? o : JSON.stringify(o))),
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
        // The orders before it were saved, and only they; the bad line before it is reported
        // and counted, none after it (the file's last line, read while that batch was written).
        const saved = await db
          .selectFrom('purchase')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .where('source', '=', source)
          .executeTakeFirstOrThrow()
        expect(line).toBeGreaterThan(5_000)
        expect(saved.n).toBe(String(line - 2))
        expect(result.stderr).toContain(
          `Saved before line ${line}: created 1, unmatched ${line - 3}, unchanged 0 (skipped 1, ` +
            `busy 0: reported above); the orders from line ${line} on are not saved, or not all. ` +
            'Import the file again once Postgres is back: the orders saved are then counted unchanged',
        )
        expect(result.stderr.match(/^line \d+:/gm)).toEqual(['line 2:'])
        // The order it created may move its customer's menu: the relink needs only Redis.
        expect(result.stdout).toContain('rich menus: re-linking queued')
      } finally {
        lock.commit()
        await lock.committed
        await proxy.close()
      }
    }, 60_000)
  }
})
