import type { Database } from '../../src/platform/db.ts'

/**
 * Every row a receipt, its void or its replay may touch for this customer, to check that a
 * refused or repeated call changed nothing.
 */
export async function receiptRowsOf(db: Database, customerId: string) {
  const [customer, purchases, ledger, coupons, deliveries, identities] = await Promise.all([
    db.selectFrom('customer').selectAll().where('id', '=', customerId).executeTakeFirstOrThrow(),
    db
      .selectFrom('purchase')
      .selectAll()
      .where('customer_id', '=', customerId)
      .orderBy('id')
      .execute(),
    db
      .selectFrom('points_ledger')
      .selectAll()
      .where('customer_id', '=', customerId)
      .orderBy('id')
      .execute(),
    db
      .selectFrom('coupon')
      .selectAll()
      .where('customer_id', '=', customerId)
      .orderBy('id')
      .execute(),
    db
      .selectFrom('delivery')
      .selectAll()
      .where('customer_id', '=', customerId)
      .orderBy('id')
      .execute(),
    db
      .selectFrom('identity')
      .selectAll()
      .where('customer_id', '=', customerId)
      .orderBy('id')
      .execute(),
  ])
  return { customer, purchases, ledger, coupons, deliveries, identities }
}
