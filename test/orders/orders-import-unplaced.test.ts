import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STRAY_FIX } from '../../src/cli/import/csv-rows.ts'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'

let db: Database
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }))
  file = await tempFiles('orders-unplaced')
})
afterAll(async () => {
  await db.destroy()
})

const purchases = (source: string) =>
  db
    .selectFrom('purchase')
    .select(['external_id', 'total', 'line_skus'])
    .where('channel', '=', 'online')
    .where('source', '=', source)
    .orderBy('external_id')
    .execute()

/** Sources spelt alike in any case, as a file's first row may write them. */
const purchasesLike = (source: string) =>
  db
    .selectFrom('purchase')
    .select(['source', 'external_id'])
    .where(sql<boolean>`lower(source) = ${source.toLowerCase()}`)
    .orderBy('external_id')
    .execute()

const newSource = () => `shop${randomUUID().slice(0, 8)}`
const HEADER = 'order_id,ordered_at,sku,quantity,unit_price,total'
const AT = '2026-11-02T10:00:00+09:00'
const importCsv = (source: string, csv: string) =>
  cli(['import', 'orders', '--source', source, csv])

describe('kizuna import orders: a row that names no order', () => {
  it('skips the order a row without an order id may belong to, and a fixed file records it whole', async () => {
    const source = newSource()
    // The armchair row without its order id, then with it.
    const a1 = (armchairOrderId: string) =>
      file('csv', [HEADER, `A1,${AT},SOFA,1,90000,100000`, `${armchairOrderId},,ARMCHAIR,1,10000,`])
    const first = await importCsv(source, await a1(''))
    expect(first.code).toBe(2)
    expect(first.stdout).toContain('orders: created 0, unmatched 0, unchanged 0, skipped 1')
    expect(first.stderr).toContain('line 3: order_id:')
    expect(first.stderr).toContain('line 2: order_id: line 3 names no order')
    expect(await purchases(source)).toEqual([])

    const again = await importCsv(source, await a1('A1'))
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('orders: created 0, unmatched 1, unchanged 0, skipped 0')
    expect(await purchases(source)).toEqual([
      { external_id: 'A1', total: 100000, line_skus: ['SOFA', 'ARMCHAIR'] },
    ])
  })

  it('skips both orders next to a row without an order id, and no other', async () => {
    const source = newSource()
    const csv = await file('csv', [
      HEADER,
      `B0,${AT},LAMP,1,100,100`,
      `B1,${AT},SOFA,1,100,200`,
      ',,ARMCHAIR,1,100,',
      `B2,${AT},SOFA,1,100,200`,
      `B2,${AT},RUG,1,100,200`,
      `B3,${AT},LAMP,1,100,100`,
      // Between two rows of one order: only that order.
      `B4,${AT},SOFA,1,100,200`,
      ',,ARMCHAIR,1,100,',
      `B4,${AT},RUG,1,100,200`,
      `B5,${AT},LAMP,1,100,100`,
    ])
    const result = await importCsv(source, csv)
    expect(result.code).toBe(2)
    expect(result.stdout).toContain('orders: created 0, unmatched 3, unchanged 0, skipped 3')
    expect(result.stderr).toContain('line 3: order_id: line 4 names no order')
    expect(result.stderr).toContain('line 5: order_id: line 4 names no order')
    expect(result.stderr).toContain('line 8: order_id: line 9 names no order')
    expect((await purchases(source)).map((p) => p.external_id)).toEqual(['B0', 'B3', 'B5'])
  })

  it('skips the order after rows without an order id at the start, and the one before at the end', async () => {
    const source = newSource()
    const csv = await file('csv', [
      HEADER,
      ',,ARMCHAIR,1,100,',
      `C1,${AT},SOFA,1,100,200`,
      `C2,${AT},LAMP,1,100,100`,
      `C3,${AT},SOFA,1,100,200`,
      ',,ARMCHAIR,1,100,',
    ])
    const result = await importCsv(source, csv)
    expect(result.code).toBe(2)
    expect(result.stdout).toContain('orders: created 0, unmatched 1, unchanged 0, skipped 2')
    expect(result.stderr).toContain('line 3: order_id: line 2 names no order')
    expect(result.stderr).toContain('line 5: order_id: line 6 names no order')
    expect((await purchases(source)).map((p) => p.external_id)).toEqual(['C2'])
  })

  it('skips the orders a badly quoted row may belong to: its own when it names it, else both', async () => {
    const source = newSource()
    const csv = await file('csv', [
      HEADER,
      `D1,${AT},SOFA,1,100,200`,
      // A stray quote after the order id: the row is still D1's, and D2 is saved.
      `D1,${AT},"RUG" large,1,100,"200"`,
      `D2,${AT},LAMP,1,100,100`,
      `D3,${AT},LAMP,1,100,100`,
      // A stray quote in the order id: D3's last row, or D4's first.
      `"D4" x,${AT},LAMP,1,100,"100"`,
      `D4,${AT},SOFA,1,100,200`,
      `D5,${AT},LAMP,1,100,100`,
    ])
    const result = await importCsv(source, csv)
    expect(result.code).toBe(2)
    expect(result.stdout).toContain('orders: created 0, unmatched 2, unchanged 0, skipped 3')
    expect(result.stderr).toBe(
      [
        `line 3: (row): a quoted cell has text after its closing quote ("a" b): ${STRAY_FIX}`,
        "line 5: order_id: line 6 names no order and may be one of this order's rows: the whole " +
          'order is skipped; give line 6 its order_id and import again',
        `line 6: (row): a quoted cell has text after its closing quote ("a" b): ${STRAY_FIX}`,
        "line 7: order_id: line 6 names no order and may be one of this order's rows: the whole " +
          'order is skipped; give line 6 its order_id and import again',
        '',
      ].join('\n'),
    )
    expect((await purchases(source)).map((p) => p.external_id)).toEqual(['D2', 'D5'])
  })
})

describe('kizuna import orders: a source written on the first row of an order only', () => {
  it("reads a blank source on a later row as the first row's, and refuses a differing one", async () => {
    const source = newSource()
    const other = newSource()
    const csv = await file('csv', [
      `source,${HEADER}`,
      `${source},E1,${AT},SOFA,1,90000,100000`,
      `,E1,,ARMCHAIR,1,10000,`,
      // Another shop system's order under the same number (its own ordered_at): two orders.
      `${source},E2,${AT},SOFA,1,100,200`,
      `${other},E2,${AT},RUG,1,100,200`,
      // In another case: another spelling of this order's source, not another shop system.
      `${source},E3,${AT},SOFA,1,100,200`,
      `${source.toUpperCase()},E3,${AT},RUG,1,100,200`,
      // Another source on a later row of the order (no ordered_at of its own).
      `${source},E4,${AT},SOFA,1,100,200`,
      `${other},E4,,RUG,1,100,`,
    ])
    const result = await cli(['import', 'orders', csv])
    expect(result.code).toBe(2)
    expect(result.stdout).toContain('orders: created 0, unmatched 3, unchanged 0, skipped 2')
    expect(result.stderr).toBe(
      [
        "line 7: source: differs from the order's first row",
        "line 9: source: differs from the order's first row",
        '',
      ].join('\n'),
    )
    expect(await purchases(source)).toEqual([
      { external_id: 'E1', total: 100000, line_skus: ['SOFA', 'ARMCHAIR'] },
      { external_id: 'E2', total: 200, line_skus: ['SOFA'] },
    ])
    expect(await purchasesLike(other)).toEqual([{ source: other, external_id: 'E2' }])
  })

  it('takes --source for an order whose first row has none, and refuses a later row naming another', async () => {
    const source = newSource()
    const other = newSource()
    const csv = await file('csv', [
      `source,${HEADER}`,
      `,F1,${AT},SOFA,1,100,200`,
      `${source},F1,,RUG,1,100,`,
      `,F2,${AT},SOFA,1,100,200`,
      `${other},F2,,RUG,1,100,`,
    ])
    const result = await importCsv(source, csv)
    expect(result.code).toBe(2)
    expect(result.stdout).toContain('orders: created 0, unmatched 1, unchanged 0, skipped 1')
    expect(result.stderr).toBe("line 5: source: differs from the order's first row\n")
    expect(await purchases(source)).toEqual([
      { external_id: 'F1', total: 200, line_skus: ['SOFA', 'RUG'] },
    ])
    expect(await purchasesLike(other)).toEqual([])
  })
})
