import { type Kysely, sql } from 'kysely'

/**
 * The coupons a purchase used, found by the purchase: a void gives them back, and a replayed
 * receipt compares them. Without it each void read the whole coupon table (one welcome coupon
 * per member: a million rows for a million members). Only used coupons are in it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createIndex('coupon_used_purchase_id_idx')
    .on('coupon')
    .column('used_purchase_id')
    .where(sql.ref('used_purchase_id'), 'is not', null)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('coupon_used_purchase_id_idx').execute()
}
