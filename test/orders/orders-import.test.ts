import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { createCustomer } from '../customers/factories.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'
import { relinkQueue } from '../support/relink-queue.ts'

let db: Database
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }))
  file = await tempFiles('orders')
})
afterAll(async () => {
  await db.destroy()
})

const purchases = (source: string) =>
  db
    .selectFrom('purchase')
    .select(['external_id', 'customer_id', 'total'])
    .select(sql<string>`cardinality(line_skus)::int8`.as('lines'))
    .where('source', '=', source)
    .orderBy('external_id')
    .execute()

const statsOf = (customerId: string) =>
  db
    .selectFrom('customer')
    .select(['purchase_count', 'total_spent'])
    .where('id', '=', customerId)
    .executeTakeFirstOrThrow()

const newSource = () => `shop${randomUUID().slice(0, 8)}`

/** A new source, and a customer holding its email; `at`, an order time. */
async function emailCustomer() {
  const source = newSource()
  const email = `${source}@example.com`
  const customer = await createCustomer(db, { identities: [{ kind: 'email', value: email }] })
  return { source, email, customer, at: '2026-11-02T10:00:00+09:00' }
}

/** The header of CSV files whose orders disagree (or not) on their own fields. */
const ORDER_ROWS_HEADER =
  'order_id,customer_external_id,customer_email,ordered_at,sku,quantity,unit_price,total'

/** `kizuna import orders --source SOURCE FILE.csv`, as a real process. */
const importCsv = async (source: string, csv: string, env: Record<string, string> = {}) =>
  cli(['import', 'orders', '--source', source, csv], env)

/** One NDJSON order line of a one-line parasol order. */
const ndjsonOrder = (source: string, orderId: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    source,
    orderId,
    orderedAt: '2026-11-03T12:00:00Z',
    lines: [{ sku: 'PARASOL-1', quantity: 1, unitPrice: 12000 }],
    total: 12000,
    ...extra,
  })

describe('kizuna import orders', () => {
  it('queues one rich-menu re-link when orders matched customers, and none otherwise', async () => {
    const queue = relinkQueue()
    try {
      const source = newSource()
      const email = `${source}@example.com`
      await createCustomer(db, { identities: [{ kind: 'email', value: email }] })
      const row = (id: string, who: string) =>
        `${id},,${who},2026-11-01T10:00:00+09:00,SOFA-1,Sofa,1,89000,89000`
      const header =
        'order_id,customer_external_id,customer_email,ordered_at,sku,name,quantity,unit_price,total'

      const unmatched = await importCsv(
        source,
        await file('csv', [header, row('B1', 'x@example.com')]),
        queue.env,
      )
      expect(unmatched.stdout).toContain('orders: created 0, unmatched 1')
      expect(unmatched.stdout).not.toContain('re-linking')
      expect(await queue.relinkJobs()).toEqual([])

      const matched = await importCsv(
        source,
        await file('csv', [header, row('B2', email)]),
        queue.env,
      )
      expect(matched.stdout).toContain('orders: created 1, unmatched 0')
      expect(matched.stdout).toContain('rich menus: re-linking queued')
      expect(await queue.relinkJobs()).toHaveLength(1)

      // Redis away: the orders are saved all the same, and the import says what happens instead.
      const noRedis = await importCsv(source, await file('csv', [header, row('B3', email)]), {
        ...queue.env,
        REDIS_URL: 'redis://127.0.0.1:1',
      })
      expect(noRedis.code).toBe(0)
      expect(noRedis.stdout).toContain('orders: created 1, unmatched 0')
      expect(noRedis.stderr).toMatch(
        /could not queue the re-linking \(Redis is unreachable.*the nightly relink does it/,
      )
      expect((await purchases(source)).map((p) => p.external_id)).toEqual(['B1', 'B2', 'B3'])
    } finally {
      await queue.close()
    }
  })

  it('groups CSV rows into orders, matches by email, and is idempotent on re-run', async () => {
    const source = newSource()
    const email = `${source}@example.com`
    const customer = await createCustomer(db, { identities: [{ kind: 'email', value: email }] })
    const csv = await file('csv', [
      'order_id,customer_external_id,customer_email,ordered_at,sku,name,quantity,unit_price,total',
      `A1,,${email.toUpperCase()},2026-11-01T10:00:00+09:00,SOFA-1,Sofa,1,89000,128000`,
      `A1,,${email.toUpperCase()},2026-11-01T10:00:00+09:00,ARM-1,Armchair,1,39000,128000`,
      'A2,c-1,,2026-11-02T10:00:00+09:00,ARM-1,,2,39000,78000',
      'A3,,,2026-11-02T10:00:00+09:00,ARM-1,,x,39000,39000',
      'A4,,,2026-11-02,ARM-1,,1,39000,39000',
    ])
    const first = await importCsv(source, csv)
    expect(first.code).toBe(2) // rows skipped
    expect(first.stdout).toContain('orders: created 1, unmatched 1, unchanged 0, skipped 2')
    expect(first.stderr).toContain('line 5: quantity: a whole number above 0')
    expect(first.stderr).toContain('line 6: ordered_at: use an ISO 8601 date-time')
    expect(await purchases(source)).toEqual([
      { external_id: 'A1', customer_id: customer.id, total: 128000, lines: '2' },
      { external_id: 'A2', customer_id: null, total: 78000, lines: '1' },
    ])

    const again = await importCsv(source, csv)
    expect(again.stdout).toContain('orders: created 0, unmatched 0, unchanged 2, skipped 2')
    expect(await purchases(source)).toHaveLength(2)
    expect(await statsOf(customer.id)).toEqual({ purchase_count: 1, total_spent: '128000' })
  })

  it('reads NDJSON, one order per line, and reports bad lines by field', async () => {
    const source = newSource()
    const order = (orderId: string, extra: Record<string, unknown> = {}) =>
      ndjsonOrder(source, orderId, extra)
    const ndjson = await file('ndjson', [
      order('N1', { customer: { externalId: `c-${source}` } }),
      order('N2', { total: -1 }),
      '',
      order('N3', { lines: [] }),
      order('N4', { lines: [{ sku: 'PARA\u0000SOL-1', quantity: 1, unitPrice: 12000 }] }),
      order('N5', { orderedAt: '0000-01-01T00:00:00Z' }), // COPY refused it
    ])
    const result = await cli(['import', 'orders', ndjson])
    expect(result.stdout).toContain('orders: created 0, unmatched 1, unchanged 0, skipped 4')
    expect(result.stderr).toContain('line 6: orderedAt: is before 1990-01-01')
    expect(result.stderr).toContain('line 2: total:')
    expect(result.stderr).toContain('line 4: lines: an order has at least one line')
    // Postgres text cannot hold a NUL: the line is reported, not the whole batch failed.
    expect(result.stderr).toContain('line 5: lines.0.sku: contains a NUL character')
    expect(await purchases(source)).toEqual([
      { external_id: 'N1', customer_id: null, total: 12000, lines: '1' },
    ])
  })

  it('reads NDJSON that Windows tools wrote: a byte-order mark and CRLF line ends', async () => {
    const source = newSource()
    const order = (orderId: string) => ndjsonOrder(source, orderId)
    const ndjson = await file('ndjson', [`\uFEFF${order('B1')}\r`, `${order('B2')}\r`])
    const result = await cli(['import', 'orders', ndjson])
    expect(result.stderr).not.toContain('line 1')
    expect(result.stdout).toContain('orders: created 0, unmatched 2, unchanged 0, skipped 0')
    expect((await purchases(source)).map((p) => p.external_id)).toEqual(['B1', 'B2'])
  })

  it('refuses a file with an unknown column before writing anything', async () => {
    const source = newSource()
    const csv = await file('csv', [
      'order_id,ordered_at,sku,quantity,unitprice,total',
      'U1,2026-11-02T10:00:00+09:00,ARM-1,1,39000,39000',
    ])
    const result = await importCsv(source, csv)
    expect(result.code).not.toBe(0)
    expect(result.stderr).toContain('unknown column "unitprice"')
    expect(await purchases(source)).toEqual([])
  })

  it('refuses a file naming a column twice, in any case, before writing anything', async () => {
    const source = newSource()
    const csv = await file('csv', [
      'order_id,ordered_at,sku,quantity,unit_price,total,Total',
      'D1,2026-11-02T10:00:00+09:00,ARM-1,1,39000,39000,1',
    ])
    const result = await importCsv(source, csv)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('FILE: column "total" appears twice (columns 6 and 7)')
    expect(await purchases(source)).toEqual([])
  })

  it('keeps line numbers across quoted line breaks, reports short rows, and keeps characters whole across read chunks', async () => {
    const source = newSource()
    // Japanese names (three bytes a character), one of them split by the 64 KB read chunks.
    const name = '北欧風ソファ'.repeat(50)
    const header =
      'order_id,customer_external_id,customer_email,ordered_at,sku,name,quantity,unit_price,total'
    const lines = (pad: string) => [
      header,
      'Q1,,,2026-11-02T10:00:00+09:00,SOFA-1,"two',
      'lines",1,1000,1000',
      'Q2,,,2026-11-02T10:00:00+09:00,SOFA-1',
      'Q3,,,2026-11-02T10:00:00+09:00,SOFA-1,,0,1000,1000',
      ...Array.from(
        { length: 100 },
        (_, i) => `B${pad}${i},,,2026-11-02T10:00:00+09:00,SOFA-1,${name},1,1000,1000`,
      ),
    ]
    const pad = ['', 'x', 'xx'].find((p) =>
      Buffer.from(lines(p).join('\n')).subarray(0, 65_536).toString().endsWith('\uFFFD'),
    )
    const csv = await file('csv', lines(pad ?? ''))
    const result = await importCsv(source, csv)
    expect(pad).toBeDefined()
    expect(result.stdout).toContain('orders: created 0, unmatched 101, unchanged 0, skipped 2')
    expect(result.stderr).toContain('line 4: (row): 5 cells where the header has 9')
    expect(result.stderr).toContain('line 5: quantity: a whole number above 0')
    const names = await db
      .selectFrom('purchase')
      .select(['external_id', 'line_names'])
      .where('source', '=', source)
      .orderBy('external_id')
      .execute()
    expect(names).toHaveLength(101)
    const q1 = names.find((n) => n.external_id === 'Q1')
    // The cell's line break is one space in the name (names are shown on one line).
    expect(q1?.line_names).toEqual(['two lines'])
    expect(names.filter((n) => n.line_names[0] === name)).toHaveLength(100)
  })

  it('reads what spreadsheets write: a byte-order mark before a quoted header, a trailing comma, a space before a quoted cell', async () => {
    const source = newSource()
    const csv = await file('csv', [
      '\uFEFF"order_id",ordered_at,sku,name,quantity,unit_price,total,',
      'S1,2026-11-02T10:00:00+09:00,SOFA-1, "Sofa ""Oslo""",1,1000,1000,',
      'S2,2026-11-02T10:00:00+09:00,SOFA-1, "Sofa, large",1,1000,1000,',
      'S3,2026-11-02T10:00:00+09:00,SOFA-1,Sofa,1,1000,1000,oops',
    ])
    const result = await importCsv(source, csv)
    expect(result.stdout).toContain('orders: created 0, unmatched 1, unchanged 0, skipped 2')
    expect(result.stderr).toContain('line 3: (row): 9 cells where the header has 8 (a space before')
    expect(result.stderr).toContain('line 4: (row): a value in a column without a name')
    const rows = await db
      .selectFrom('purchase')
      .select(['external_id', 'line_names'])
      .where('source', '=', source)
      .execute()
    expect(rows).toEqual([{ external_id: 'S1', line_names: ['Sofa "Oslo"'] }])
  })

  it('skips the whole order when one of its rows cannot be read, never a part of it', async () => {
    const source = newSource()
    const csv = await file('csv', [
      'order_id,ordered_at,sku,quantity,unit_price,total',
      'P1,2026-11-02T10:00:00+09:00,A,1,100,300',
      'P1,2026-11-02T10:00:00+09:00,B,1,100,300,extra',
      'P1,2026-11-02T10:00:00+09:00,C,1,100,300',
      'P2,2026-11-02T10:00:00+09:00,A,1,100,100',
    ])
    const result = await importCsv(source, csv)
    expect(result.stdout).toContain('orders: created 0, unmatched 1, unchanged 0, skipped 1')
    expect(result.stderr).toContain('line 3: (row): 7 cells where the header has 6')
    expect(await purchases(source)).toEqual([
      { external_id: 'P2', customer_id: null, total: 100, lines: '1' },
    ])
  })

  it("skips an order whose rows disagree on the order's fields, reporting each differing row", async () => {
    const { source, email, customer, at } = await emailCustomer()
    const csv = await file('csv', [
      ORDER_ROWS_HEADER,
      `T1,,${email},${at},A,1,100,200`,
      `T1,,${email},${at},B,1,100,300`,
      `E1,,${email},${at},A,1,100,200`,
      `E1,,other-${email},${at},B,1,100,200`,
      `D1,,${email},${at},A,1,100,200`,
      `D1,,${email},2026-11-03T10:00:00+09:00,B,1,100,200`,
      `X1,x-1,,${at},A,1,100,300`,
      `X1,x-1,,${at},B,1,100,300`,
      `X1,x-2,,${at},C,1,100,400`,
      // The same values written otherwise: the same instant in UTC, the email in capitals.
      `S1,,${email},${at},A,1,100,200`,
      `S1,,${email.toUpperCase()},2026-11-02T01:00:00Z,B,1,100,200`,
    ])
    const result = await importCsv(source, csv)
    expect(result.code).toBe(2) // rows skipped
    expect(result.stdout).toContain('orders: created 1, unmatched 0, unchanged 0, skipped 4')
    expect(result.stderr).toBe(
      [
        "line 3: total: differs from the order's first row",
        "line 5: customer_email: differs from the order's first row",
        "line 7: ordered_at: differs from the order's first row",
        "line 10: customer_external_id: differs from the order's first row",
        "line 10: total: differs from the order's first row",
        '',
      ].join('\n'),
    )
    expect(await purchases(source)).toEqual([
      { external_id: 'S1', customer_id: customer.id, total: 200, lines: '2' },
    ])
    expect(await statsOf(customer.id)).toEqual({ purchase_count: 1, total_spent: '200' })
    const shopIds = await db
      .selectFrom('identity')
      .select('value')
      .where('value', 'in', ['x-1', 'x-2'])
      .execute()
    expect(shopIds).toEqual([])
  })

  it("reads a blank order field on a later row as the first row's, still refusing a differing one", async () => {
    const { source, email, customer, at } = await emailCustomer()
    const csv = await file('csv', [
      ORDER_ROWS_HEADER,
      // The order's fields on its first line-item row only, as many shops export them.
      `B1,,${email},${at},A,1,100,300`,
      'B1,,,,B,1,100,',
      'B1,, ,,C,1,100, ',
      // A blank row does not hide one that says otherwise.
      `D1,,${email},${at},A,1,100,200`,
      'D1,,,,B,1,100,',
      'D1,,,,C,1,100,300',
    ])
    const result = await importCsv(source, csv)
    expect(result.code).toBe(2) // D1 skipped
    expect(result.stdout).toContain('orders: created 1, unmatched 0, unchanged 0, skipped 1')
    expect(result.stderr).toBe("line 7: total: differs from the order's first row\n")
    expect(await purchases(source)).toEqual([
      { external_id: 'B1', customer_id: customer.id, total: 300, lines: '3' },
    ])
    expect(await statsOf(customer.id)).toEqual({ purchase_count: 1, total_spent: '300' })
  })

  it('skips an order whose rows are not next to each other, however far apart, never a part of it', async () => {
    const source = newSource()
    const header = 'order_id,ordered_at,sku,quantity,unit_price,total'
    const row = (id: string, sku: string) => `${id},2026-11-02T10:00:00+09:00,${sku},1,100,200`
    // More orders between F1's rows than one write batch holds (5000).
    const between = Array.from(
      { length: 5001 },
      (_, i) => `G${i},2026-11-02T10:00:00+09:00,A,1,100,100`,
    )
    const split = await file('csv', [
      header,
      row('O1', 'A'),
      'O2,2026-11-02T10:00:00+09:00,A,1,100,100',
      row('O1', 'B'),
      row('F1', 'A'),
      ...between,
      row('F1', 'B'),
    ])
    const first = await importCsv(source, split)
    expect(first.code).toBe(2) // rows skipped
    expect(first.stdout).toContain('orders: created 0, unmatched 5002, unchanged 0, skipped 2')
    expect(first.stderr).toContain(
      'line 2: order_id: the rows of this order are not next to each other (line 4 is one of them): the whole order is skipped',
    )
    expect(first.stderr).toContain(
      'line 5: order_id: the rows of this order are not next to each other (line 5007 is',
    )
    expect(first.stderr).not.toContain('line 4:')
    const saved = await purchases(source)
    expect(saved).toHaveLength(5002)
    expect(saved.filter((p) => p.external_id === 'O1' || p.external_id === 'F1')).toEqual([])

    // The corrected file saves both orders whole.
    const fixed = await file('csv', [
      header,
      row('O1', 'A'),
      row('O1', 'B'),
      'O2,2026-11-02T10:00:00+09:00,A,1,100,100',
      row('F1', 'A'),
      row('F1', 'B'),
      ...between,
    ])
    const again = await importCsv(source, fixed)
    expect(again.stdout).toContain('orders: created 0, unmatched 2, unchanged 5002, skipped 0')
    const whole = (await purchases(source)).filter((p) => ['O1', 'F1'].includes(p.external_id))
    expect(whole).toEqual([
      { external_id: 'F1', customer_id: null, total: 200, lines: '2' },
      { external_id: 'O1', customer_id: null, total: 200, lines: '2' },
    ])
  })
})
