import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { cli } from '../support/cli.ts'
import { tempFiles } from '../support/files.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'

// An order's source names the shop system: recorded once per (source, order id), so the same
// name in other letter case ("shopify" from the API, "--source Shopify" from an import) would
// record the same order twice, and give its points twice. Refused instead.

let k: TestKizuna
let importKey: string
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  k = await startTestKizuna()
  importKey = (await createApiKey(k.deps.db, { storeId: null, scopes: ['import'] })).key
  file = await tempFiles('order-source-case')
})
afterAll(async () => {
  await k.stopAll()
})

const postOrder = (body: unknown) =>
  fetch(`${k.baseUrl}/api/orders`, {
    method: 'POST',
    headers: { authorization: `Bearer ${importKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })

const order = (source: string, orderId: string) => ({
  source,
  orderId,
  orderedAt: '2026-11-20T10:00:00+09:00',
  lines: [{ sku: 'SOFA-1', quantity: 1, unitPrice: 89000 }],
  total: 89000,
})

/** The online orders recorded under the source in any letter case, with the spelling used. */
const recorded = (source: string) =>
  k.deps.db
    .selectFrom('purchase')
    .select(['source', 'external_id'])
    .where('channel', '=', 'online')
    .where(sql<boolean>`lower(source) = ${source.toLowerCase()}`)
    .orderBy('external_id')
    .execute()

/** A new shop system's name, all lower case; and the same in capitals. */
const newSource = () => {
  const source = `shop${randomUUID().slice(0, 8)}`
  return { source, shouted: source.toUpperCase() }
}

describe('an online order whose source differs only in letter case from a recorded one', () => {
  it('is refused by POST /api/orders with a 400 naming source, and nothing is written', async () => {
    const { source, shouted } = newSource()
    expect((await postOrder(order(source, 'A1'))).status).toBe(201)

    const refused = await postOrder(order(shouted, 'A1'))
    expect(refused.status).toBe(400)
    const body = await errorOf(refused)
    expect(body.code).toBe('BAD_REQUEST')
    expect(body.message).toMatch(/^source: .*recorded as "shop[0-9a-f]{8}"/)
    expect((await postOrder(order(`${shouted.slice(0, 4)}${source.slice(4)}`, 'A2'))).status).toBe(
      400,
    )

    // The recorded spelling goes on as before: the order sent again, and new ones.
    expect((await postOrder(order(source, 'A1'))).status).toBe(200)
    expect((await postOrder(order(source, 'A2'))).status).toBe(201)
    expect(await recorded(source)).toEqual([
      { source, external_id: 'A1' },
      { source, external_id: 'A2' },
    ])
  })

  it('takes the first spelling of a new source, and refuses the other one afterwards', async () => {
    const { source, shouted } = newSource()
    const [a, b] = await Promise.all([
      postOrder(order(shouted, 'B1')),
      postOrder(order(source, 'B1')),
    ])
    // One of the two, whichever came first; the other is a 400.
    expect([a.status, b.status].sort()).toEqual([201, 400])
    expect(await recorded(source)).toHaveLength(1)
  })

  it('refuses an import under --source in other letter case before writing anything', async () => {
    const { source, shouted } = newSource()
    expect((await postOrder(order(source, 'C1'))).status).toBe(201)
    const csv = await file('csv', [
      'order_id,ordered_at,sku,quantity,unit_price,total',
      'C1,2026-11-20T10:00:00+09:00,SOFA-1,1,89000,89000',
      'C2,2026-11-20T10:00:00+09:00,SOFA-1,1,89000,89000',
    ])
    const result = await cli(['import', 'orders', '--source', shouted, csv])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/error: --source: .*recorded as "shop[0-9a-f]{8}"/)
    expect(result.stdout).toBe('')
    expect(await recorded(source)).toEqual([{ source, external_id: 'C1' }])

    // Under the recorded spelling, the same file imports (C1 found, C2 new).
    const ok = await cli(['import', 'orders', '--source', source, csv])
    expect(ok.stdout).toContain('orders: created 0, unmatched 1, unchanged 1, skipped 0')
  })

  it("reports an imported order naming the source in other letter case by line, and imports the file's others", async () => {
    const { source, shouted } = newSource()
    expect((await postOrder(order(source, 'D1'))).status).toBe(201)
    const ndjson = await file('ndjson', [
      JSON.stringify(order(shouted, 'D1')),
      JSON.stringify(order(source, 'D2')),
      JSON.stringify(order(shouted, 'D3')),
    ])
    const result = await cli(['import', 'orders', ndjson])
    expect(result.code).toBe(2)
    expect(result.stdout).toContain('orders: created 0, unmatched 1, unchanged 0, skipped 2')
    expect(result.stderr.match(/^line \d+: source: /gm)).toEqual([
      'line 1: source: ',
      'line 3: source: ',
    ])
    expect(await recorded(source)).toEqual([
      { source, external_id: 'D1' },
      { source, external_id: 'D2' },
    ])
  })
})
