import { afterAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { recordOrder } from '../../src/orders/order.service.ts'
import type { AppError } from '../../src/platform/errors.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { databaseMigratedTo } from '../support/migrated-database.ts'

const BEFORE = '20261226T100000-index-delivery-event-open-once'
const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })

describe('migration 20261226T120000: order sources', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn()
  })

  it('notes the sources online orders were recorded under, each spelling of a name recorded in two', async () => {
    const migrated = await databaseMigratedTo(BEFORE)
    cleanups.push(() => migrated.close())
    const { db } = migrated
    const purchase = (channel: string, source: string, externalId: string) => ({
      channel,
      source,
      external_id: externalId,
      purchased_at: new Date('2026-11-20T01:00:00Z'),
      total: 1_000,
      line_skus: ['SOFA-1'],
      line_names: ['Sofa'],
      line_quantities: [1],
      line_unit_prices: [1_000],
    })
    await db
      .insertInto('purchase')
      .values([
        purchase('online', 'webshop', 'W1'),
        purchase('online', 'webshop', 'W2'),
        // One shop system in two spellings already: the same order recorded twice, maybe.
        purchase('online', 'Shopify', 'S1'),
        purchase('online', 'shopify', 'S1'),
        // A store's code is no online source.
        purchase('store', 'BASE', 'R1'),
      ])
      .execute()

    await migrated.migrateToLatest()
    const sources = await db
      .selectFrom('order_source')
      .select(['lower_source', 'spellings'])
      .orderBy('lower_source')
      .execute()
    expect(sources).toEqual([
      { lower_source: 'shopify', spellings: ['Shopify', 'shopify'] },
      { lower_source: 'webshop', spellings: ['webshop'] },
    ])

    const record = (source: string, orderId: string) =>
      db.transaction().execute((trx) =>
        recordOrder(trx, env, {
          source,
          orderId,
          customer: {},
          orderedAt: new Date('2026-11-21T01:00:00Z'),
          lines: [{ sku: 'SOFA-1', quantity: 1, unitPrice: 1_000 }],
          total: 1_000,
        }),
      )
    // Both spellings recorded go on; another is refused, naming the source.
    expect(await record('Shopify', 'S2')).toMatchObject({ created: true })
    expect(await record('shopify', 'S3')).toMatchObject({ created: true })
    for (const source of ['SHOPIFY', 'WebShop']) {
      const refused = await record(source, 'X1').catch((error: AppError) => error)
      expect(refused).toMatchObject({ code: 'BAD_REQUEST' })
      expect((refused as AppError).message).toMatch(
        /^source: orders of this shop system are recorded as "/,
      )
    }
    expect(await record('base', 'B1')).toMatchObject({ created: true })
  })
})
