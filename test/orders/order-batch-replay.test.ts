import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import type { Order } from '../../src/orders/order.schemas.ts'
import { recordOrder, recordOrderBatch } from '../../src/orders/order.service.ts'
import { NeedsPerOrderPath, writeOrderBatch } from '../../src/orders/order-batch.repo.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { AppError } from '../../src/platform/errors.ts'
import { createCustomer, mergeInto } from '../customers/factories.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'

// An import run again, or a shop export that changed an order since: the same order is left as
// it is ("unchanged"); a different one under a recorded order id is reported by line, as the API
// answers it (409 naming the field), and nothing of it is written.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
  file = await tempFiles('order-replay')
})
afterAll(async () => {
  await db.destroy()
})

const newSource = () => `shop${randomUUID().slice(0, 8)}`
const order = (source: string, orderId: string, over: Partial<Order> = {}): Order => ({
  source,
  orderId,
  customer: {},
  orderedAt: new Date(Date.now() - 86_400_000),
  lines: [{ sku: 'PARASOL-1', quantity: 1, unitPrice: over.total ?? 12_000 }],
  total: 12_000,
  ...over,
})
const ndjson = (o: Order) => JSON.stringify({ ...o, orderedAt: o.orderedAt.toISOString() })
const purchases = (source: string) =>
  db
    .selectFrom('purchase')
    .select(['external_id', 'customer_id', 'total'])
    .where('source', '=', source)
    .orderBy('external_id')
    .execute()
const holderOf = async (value: string) =>
  (await db.selectFrom('identity').select('customer_id').where('value', '=', value).execute()).map(
    (r) => r.customer_id,
  )

describe('an order imported again', () => {
  it('is reported by line when it names another customer or total, and nothing of it is written', async () => {
    const source = newSource()
    const e1 = `shop-${randomUUID()}`
    const e2 = `shop-${randomUUID()}`
    const mail = `${randomUUID().slice(0, 8)}@example.com`
    const a = await createCustomer(db, { identities: [{ kind: 'online_customer', value: e1 }] })
    await createCustomer(db, { identities: [{ kind: 'email', value: mail }] })
    const n1 = order(source, 'N1', { customer: { externalId: e1 } })
    const n2 = order(source, 'N2')
    const n4 = order(source, 'N4', { customer: { externalId: e1 } })
    const first = await cli(['import', 'orders', await file('ndjson', [n1, n2, n4].map(ndjson))])
    expect(first.stdout).toContain('orders: created 2, unmatched 1, unchanged 0, skipped 0')
    const before = await purchases(source)

    const again = await cli([
      'import',
      'orders',
      await file('ndjson', [
        ndjson(n1), // the same: unchanged
        ndjson({ ...n2, total: 5 }),
        ndjson(order(source, 'N3')),
        ndjson({ ...n4, customer: { externalId: e2, email: mail } }),
        ndjson(order(source, 'N5')),
        ndjson(order(source, 'N5', { total: 7 })), // twice in the file, changed
        ndjson({ ...n1, lines: [{ sku: 'PARASOL-2', quantity: 1, unitPrice: 12_000 }] }),
        ndjson(order(source, 'N6')),
        ndjson({
          ...order(source, 'N6'),
          lines: [{ sku: 'BASE-1', quantity: 2, unitPrice: 6_000 }],
        }),
      ]),
    ])
    expect(again.stdout).toContain('orders: created 0, unmatched 3, unchanged 1, skipped 5')
    expect(again.stderr).toContain('line 2: total: order N2 was recorded before with total 12000')
    expect(again.stderr).toContain('line 4: customer: order N4 was recorded before for another')
    expect(again.stderr).toContain('line 6: total: order N5 was recorded before with total 12000')
    expect(again.stderr).toContain('line 7: lines: order N1 was recorded before with other lines')
    expect(again.stderr).toContain('line 9: lines: order N6 was recorded before with other lines')
    expect(again.stderr).not.toMatch(/line [1358]:/)
    expect(await purchases(source)).toEqual([
      ...before.slice(0, 2),
      { external_id: 'N3', customer_id: null, total: 12_000 },
      before[2],
      { external_id: 'N5', customer_id: null, total: 12_000 },
      { external_id: 'N6', customer_id: null, total: 12_000 },
    ])
    expect(before[2]).toEqual({ external_id: 'N4', customer_id: a.id, total: 12_000 })
    const lines = await db
      .selectFrom('purchase')
      .select(['external_id', 'line_skus', 'line_quantities'])
      .where('source', '=', source)
      .where('external_id', 'in', ['N1', 'N6'])
      .orderBy('external_id')
      .execute()
    expect(lines).toEqual(
      ['N1', 'N6'].map((id) => ({
        external_id: id,
        line_skus: ['PARASOL-1'],
        line_quantities: [1],
      })),
    )
    expect(await holderOf(e2)).toEqual([])
  })

  it('is reported by line when it names another time, in the file twice too; the same instant in another offset is unchanged', async () => {
    const source = newSource()
    const e1 = `shop-${randomUUID()}`
    const a = await createCustomer(db, { identities: [{ kind: 'online_customer', value: e1 }] })
    const at = new Date('2026-11-20T01:30:00Z')
    const hourLater = new Date('2026-11-20T02:30:00Z')
    const d1 = order(source, 'D1', { customer: { externalId: e1 }, orderedAt: at })
    const first = await cli(['import', 'orders', await file('ndjson', [ndjson(d1)])])
    expect(first.stdout).toContain('orders: created 1, unmatched 0, unchanged 0, skipped 0')
    /** The order as a shop in Japan writes its time: the same instant. */
    const inJapanTime = (o: Order) =>
      JSON.stringify({ ...o, orderedAt: '2026-11-20T10:30:00+09:00' })

    const again = await cli([
      'import',
      'orders',
      await file('ndjson', [
        ndjson({ ...d1, orderedAt: hourLater }),
        inJapanTime(d1), // unchanged
        ndjson(order(source, 'D2', { orderedAt: at })),
        ndjson(order(source, 'D2', { orderedAt: hourLater })), // twice in the file, changed
        ndjson(order(source, 'D3', { orderedAt: at })),
        inJapanTime(order(source, 'D3')), // twice in the file, the same
      ]),
    ])
    expect(again.stdout).toContain('orders: created 0, unmatched 2, unchanged 2, skipped 2')
    const recorded = 'was recorded before as ordered at 2026-11-20T01:30:00.000Z'
    expect(again.stderr).toContain(`line 1: orderedAt: order D1 ${recorded}`)
    expect(again.stderr).toContain(`line 4: orderedAt: order D2 ${recorded}`)
    expect(again.stderr).not.toMatch(/line [2356]:/)

    // In CSV, by its column.
    const csv = await cli([
      'import',
      'orders',
      '--source',
      source,
      await file('csv', [
        'order_id,customer_external_id,ordered_at,sku,quantity,unit_price,total',
        `D1,${e1},2026-11-20T02:30:00Z,PARASOL-1,1,12000,12000`,
      ]),
    ])
    expect(csv.stderr).toContain(`line 2: ordered_at: order D1 ${recorded}`)
    const dates = await db
      .selectFrom('purchase')
      .select(['external_id', 'customer_id', 'purchased_at'])
      .where('source', '=', source)
      .orderBy('external_id')
      .execute()
    expect(dates).toEqual([
      { external_id: 'D1', customer_id: a.id, purchased_at: at },
      { external_id: 'D2', customer_id: null, purchased_at: at },
      { external_id: 'D3', customer_id: null, purchased_at: at },
    ])
  })

  it('is left to the one-by-one path by a batch, which refuses it alone', async () => {
    const source = newSource()
    const e1 = `shop-${randomUUID()}`
    await createCustomer(db, { identities: [{ kind: 'online_customer', value: e1 }] })
    const known = order(source, 'K1', { customer: { externalId: e1 } })
    await db.transaction().execute((trx) => writeOrderBatch(trx, env, [known]))
    // Changed since: the batch leaves it to the one-by-one path, which refuses it alone.
    const changed = { ...known, total: 1 }
    await expect(
      db.transaction().execute((trx) => writeOrderBatch(trx, env, [changed])),
    ).rejects.toBeInstanceOf(NeedsPerOrderPath)
    const results = await recordOrderBatch(db, env, [changed, order(source, 'K3')])
    const refused = 'error' in results[0]! ? results[0].error : null
    expect(refused).toBeInstanceOf(AppError)
    expect((refused as AppError).details).toEqual([
      { field: 'total', message: 'was recorded before with total 12000' },
    ])
    expect(results[1]).toMatchObject({ outcome: { created: true } })
    expect((await purchases(source)).map((p) => [p.external_id, p.total])).toEqual([
      ['K1', 12_000],
      ['K3', 12_000],
    ])
  })

  // A re-run's batch written as a batch (writeOrderBatch resolves: no NeedsPerOrderPath) answers
  // what the one-by-one path answers for each order (recordOrder, which writes nothing for them).
  const batchAgain = (orders: Order[]) =>
    db.transaction().execute((trx) => writeOrderBatch(trx, env, orders))
  const oneAgain = (o: Order) => db.transaction().execute((trx) => recordOrder(trx, env, o))

  it('is written as a batch, unchanged, when its customer was merged or erased since', async () => {
    const source = newSource()
    const e1 = `shop-${randomUUID()}`
    const e2 = `shop-${randomUUID()}`
    const a = await createCustomer(db, { identities: [{ kind: 'online_customer', value: e1 }] })
    const b = await createCustomer(db, { identities: [{ kind: 'online_customer', value: e2 }] })
    const s = await createCustomer(db)
    const erased = order(source, 'E1', { customer: { externalId: e1 } })
    const merged = order(source, 'M1', { customer: { externalId: e2 } })
    await batchAgain([erased, merged])
    await eraseCustomer(db, a.id)
    await mergeInto(db, s.id, b.id)
    const before = await purchases(source)

    const outcomes = await batchAgain([erased, merged])
    expect(outcomes.map((o) => [o.created, o.customerId])).toEqual([
      [false, null],
      [false, s.id],
    ])
    expect(outcomes).toEqual([await oneAgain(erased), await oneAgain(merged)])
    expect(await purchases(source)).toEqual(before)
  })

  it('is written as a batch, unchanged, when its email leads to a customer since', async () => {
    const source = newSource()
    const e1 = `shop-${randomUUID()}`
    const mail = `${randomUUID().slice(0, 8)}@example.com`
    const waiting = order(source, 'W1', { customer: { externalId: e1, email: mail } })
    await batchAgain([waiting])
    await createCustomer(db, { identities: [{ kind: 'email', value: mail }] })

    const outcomes = await batchAgain([waiting])
    expect(outcomes).toEqual([expect.objectContaining({ created: false, customerId: null })])
    expect(outcomes).toEqual([await oneAgain(waiting)])
    // As one by one: an order recorded before attaches nothing (the nightly refresh will).
    expect(await holderOf(e1)).toEqual([])
    expect(await purchases(source)).toEqual([
      { external_id: 'W1', customer_id: null, total: 12_000 },
    ])

    const again = await cli(['import', 'orders', await file('ndjson', [ndjson(waiting)])])
    expect(again.stdout).toContain('orders: created 0, unmatched 0, unchanged 1, skipped 0')
  })
})
