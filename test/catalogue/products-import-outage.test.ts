import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'
import {
  cliCutOffWhileWaiting,
  cliReadOnly,
  cliTimingOutOnce,
  expectStoppedAt,
} from '../support/import-stops.ts'
import type { TakeLock } from '../support/locks.ts'

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
  const holdHeld: TakeLock = (trx) =>
    sql`select sku from product where sku = ${held} for update`.execute(trx)
  return { tag, held, csv, holdHeld }
}

describe('kizuna import products when Postgres cannot write or goes away', () => {
  it('stops at the first batch, saying Postgres cannot write', async () => {
    const { tag, csv } = await scene()
    const result = await cliReadOnly(['import', 'products', csv])

    expectStoppedAt(
      result,
      3,
      'created 0, updated 0, unchanged 0 (skipped 1: reported above); the products from line 3 ' +
        'on are not saved, or not all. Import the file again once Postgres is back: the ' +
        'products saved are then counted unchanged',
    )
    expect(result.stderr).toContain('read-only transaction')
    expect(result.stderr.match(/^line \d+:/gm)).toEqual(['line 2:'])
    expect(await countOf(tag)).toBe(1)
  })

  it('stops at the batch it was writing when Postgres goes away, with what it saved before', async () => {
    const { tag, csv, holdHeld } = await scene()
    const result = await cliCutOffWhileWaiting(db, ['import', 'products', csv], holdHeld)

    expectStoppedAt(result, 503, 'created 500, updated 0, unchanged 0 (skipped 1: reported above)')
    // The bad row after it, read before the batch was written, is not reported: the next run
    // reads it again.
    expect(result.stderr.match(/^line \d+:/gm)).toEqual(['line 2:'])
    expect(await countOf(tag)).toBe(501)
  })
})

describe('kizuna import products when Postgres gives up on a batch', () => {
  it('runs the batch again, and saves it', async () => {
    const { tag, held, csv, holdHeld } = await scene()
    const result = await cliTimingOutOnce(db, ['import', 'products', csv], holdHeld)

    expect(result.code, result.stderr).toBe(2) // rows skipped
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
