import { randomUUID } from 'node:crypto'
import type { Order } from '../../src/orders/order.schemas.ts'
import type { Database } from '../../src/platform/db.ts'
import { createCustomer } from '../customers/factories.ts'

/** An order of one sofa line as `kizuna import orders` reads it from NDJSON. */
export const orderOf = (source: string, customer: Order['customer'], total: number) => ({
  source,
  orderId: `W-${randomUUID()}`,
  customer,
  orderedAt: '2026-11-03T12:00:00Z',
  lines: [{ sku: 'SOFA-1', quantity: 1, unitPrice: total }],
  total,
})
export type OrderLine = ReturnType<typeof orderOf>

/**
 * An erased customer who held this shop id. An order naming it with a live customer's email
 * would link the two: a batch cannot write it (writeOrderBatch finds so before it locks
 * anything) and is written one order at a time, where that order is refused.
 */
export async function erasedHolderOf(db: Database, shopId: string): Promise<void> {
  const erased = await createCustomer(db, {
    identities: [{ kind: 'online_customer', value: shopId }],
  })
  await db
    .updateTable('customer')
    .set({ erased_at: new Date() })
    .where('id', '=', erased.id)
    .execute()
}
