import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'
import { startDatabaseProxy } from '../support/frozen-proxy.ts'
import { backendPid, heldTransaction, lockWaitFor, waitedForAgain } from '../support/locks.ts'

// `kizuna import products` when Postgres goes away, cannot write (a failed-over primary) or
// gives up on a batch (a lock timeout): it stops saying what it saved before which line, as the
// orders import does, or runs the batch again.

let db: Database
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }), { poolSize: 4 })
  file = await tempFiles('products-outage')
})
afterAll(async () => {
  await db.destroy()
})

const countOf = async (tag: string) => {
  const { n } = await db
    .selectFrom('product')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('sku', 'like', `%-${tag}`)
    .executeTakeFirstOrThrow()
  return Number(n)
}

/**
 * A product the test holds, and a file: a bad row (line 2), 500 new products (lines 3-502: one
 * batch), the held product renamed (line 503), a bad row (line 504) and a new product (line 505).
 */
async function scene() {
  const tag = randomUUID().slice(0, 8)
  const held = `HELD-${tag}`
  await db.insertInto('product').values({ sku: held, name: 'Held' }).execute()
  const csv = await file('csv', [
    'sku,name,price',
    `BAD-${tag},Bad,12.5`,
    ...Array.from({ length: 500 }, (_, i) => `P${i}-${tag},Product ${i},1000`),
    `${held},Held renamed,2000`,
    `WORSE-${tag},Worse,-1`,
    `LAST-${tag},Last,3000`,
  ])
  /** Holds the product; `pid`: the holding connection's backend. */
  const hold = async () => {
    let pid = 0
    const lock = await heldTransaction(db, async (trx) => {
      pid = await backendPid(trx)
      await sql`select sku from product where sku = ${held} for update`.execute(trx)
    })
    return { ...lock, pid }
  }
  return { tag, held, csv, hold }
}

describe('kizuna import products when Postgres cannot write or goes away', () => {
  it('stops at the first batch, saying Postgres cannot write', async () => {
    const { tag, csv } = await scene()
    const result = await cli(['import', 'products', csv], {
      PGOPTIONS: '-c default_transaction_read_only=on',
    })

    expect(result.code).toBe(1)
    expect(result.stderr).toContain(
      'error: the import stopped at line 3: Postgres (DATABASE_URL) went away or cannot write: ',
    )
    expect(result.stderr).toContain('read-only transaction')
    expect(result.stderr).toContain(
      'Saved before line 3: created 0, updated 0, unchanged 0 (skipped 1: reported above); ' +
        'the products from line 3 on are not saved, or not all. Import the file again once ' +
        'Postgres is back: the products saved are then counted unchanged',
    )
    expect(result.stderr.match(/^line \d+:/gm)).toEqual(['line 2:'])
    expect(await countOf(tag)).toBe(1)
  })

  it('stops at the batch it was writing when Postgres goes away, with what it saved before', async () => {
    const { tag, csv, hold } = await scene()
    const proxy = await startDatabaseProxy(TEST_DATABASE_URL)
    const lock = await hold()
    try {
      const importing = cli(['import', 'products', csv], { DATABASE_URL: proxy.url })
      await lockWaitFor(db, lock.pid)
      proxy.cut()
      const result = await importing

      expect(result.code).toBe(1)
      expect(result.stderr).toContain(
        'error: the import stopped at line 503: Postgres (DATABASE_URL) went away or cannot write: ',
      )
      expect(result.stderr).toContain(
        'Saved before line 503: created 500, updated 0, unchanged 0 (skipped 1: reported above)',
      )
      // The bad row after it, read before the batch was written, is not reported: the next run
      // reads it again.
      expect(result.stderr.match(/^line \d+:/gm)).toEqual(['line 2:'])
      expect(await countOf(tag)).toBe(501)
    } finally {
      lock.commit()
      await lock.committed
      await proxy.close()
    }
  })
})

describe('kizuna import products when Postgres gives up on a batch', () => {
  it('runs the batch again, and saves it', async () => {
    const { tag, held, csv, hold } = await scene()
    const lock = await hold()
    const importing = cli(['import', 'products', csv], { PGOPTIONS: '-c lock_timeout=500ms' })
    try {
      await waitedForAgain(db, lock.pid)
    } finally {
      lock.commit()
      await lock.committed
    }
    const result = await importing

    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain('products: created 501, updated 1, unchanged 0, skipped 2')
    expect(await countOf(tag)).toBe(502)
    const renamed = await db
      .selectFrom('product')
      .select('name')
      .where('sku', '=', held)
      .executeTakeFirstOrThrow()
    expect(renamed.name).toBe('Held renamed')
  })
})
