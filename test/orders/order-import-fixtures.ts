import { randomUUID } from 'node:crypto'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { MAX_MERGE_HOPS } from '../../src/customers/surviving-customer.repo.ts'
import type { Order } from '../../src/orders/order.schemas.ts'
import type { Database } from '../../src/platform/db.ts'
import { createCustomer, createPurchase, writeMergeChain } from '../customers/factories.ts'

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
 * A person who held this shop id and email and bought once (a purchase of 3,000 yen), erased on
 * request as eraseCustomer erases: the shop id and email are left only as tombstones (hashes),
 * the purchase stays theirs, anonymised. Returns their customer id.
 */
export async function erasedPersonOf(
  db: Database,
  held: { shopId: string; email: string },
): Promise<string> {
  const person = await createCustomer(db, {
    identities: [
      { kind: 'online_customer', value: held.shopId },
      { kind: 'email', value: held.email },
    ],
  })
  await createPurchase(db, person.id, { total: 3_000 })
  await eraseCustomer(db, person.id)
  return person.id
}

/**
 * An email held at the start of a merge chain longer than any walk follows (writeMergeChain: one
 * left by hand or by a bug). An order naming it cannot be written in a batch (findIdentityHolders
 * refuses the chain before anything is locked): its batch is written one order at a time, where
 * that order is refused (MergeChainTooLong).
 */
export async function emailPastMergeChain(db: Database): Promise<string> {
  const [start] = await writeMergeChain(db, MAX_MERGE_HOPS + 1)
  const email = `chained-${randomUUID().slice(0, 8)}@example.jp`
  await db
    .insertInto('identity')
    .values({ customer_id: start as string, kind: 'email', value: email })
    .execute()
  return email
}
