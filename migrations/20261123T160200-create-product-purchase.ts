import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('product')
    .addColumn('sku', 'text', (col) => col.primaryKey())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('category', 'text')
    .addColumn('price', 'integer', (col) => col.check(sql`price >= 0`))
    .addColumn('image_url', 'text')
    .addColumn('related_skus', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'`))
    .addColumn('warranty_months', 'integer', (col) => col.check(sql`warranty_months >= 0`))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()

  // A store receipt (channel 'store', source = store code) or an online order (channel
  // 'online', source = the shop system); recorded once per (channel, source, external_id).
  await db.schema
    .createTable('purchase')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('customer_id', 'uuid', (col) => col.references('customer.id'))
    .addColumn('channel', 'text', (col) => col.notNull().check(sql`channel in ('store', 'online')`))
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('external_id', 'text', (col) => col.notNull())
    .addColumn('store_id', 'uuid', (col) => col.references('store.id'))
    .addColumn('register_id', 'text')
    .addColumn('purchased_at', 'timestamptz', (col) => col.notNull())
    .addColumn('total', 'integer', (col) => col.notNull().check(sql`total >= 0`))
    .addColumn('points_earned', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('points_used', 'integer', (col) => col.notNull().defaultTo(0))
    // An online order whose customer is not known yet waits here for that identity to appear.
    .addColumn('pending_identity_kind', 'text')
    .addColumn('pending_identity_value', 'text')
    .addColumn('result', 'jsonb')
    .addColumn('voided_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('purchase_channel_source_external_id_key', [
      'channel',
      'source',
      'external_id',
    ])
    .execute()
  await db.schema
    .createIndex('purchase_customer_id_purchased_at_idx')
    .on('purchase')
    .columns(['customer_id', 'purchased_at'])
    .execute()
  await db.schema
    .createIndex('purchase_pending_identity_idx')
    .on('purchase')
    .columns(['pending_identity_kind', 'pending_identity_value'])
    .where(sql.ref('customer_id'), 'is', null)
    .execute()

  await db.schema
    .createTable('purchase_line')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('purchase_id', 'uuid', (col) =>
      col.notNull().references('purchase.id').onDelete('cascade'),
    )
    .addColumn('line_no', 'integer', (col) => col.notNull())
    .addColumn('sku', 'text', (col) => col.notNull())
    .addColumn('name', 'text')
    .addColumn('quantity', 'integer', (col) => col.notNull().check(sql`quantity > 0`))
    .addColumn('unit_price', 'integer', (col) => col.notNull().check(sql`unit_price >= 0`))
    .addUniqueConstraint('purchase_line_purchase_id_line_no_key', ['purchase_id', 'line_no'])
    .execute()
  await db.schema.createIndex('purchase_line_sku_idx').on('purchase_line').column('sku').execute()

  await db.schema
    .createTable('points_ledger')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('delta', 'integer', (col) => col.notNull())
    .addColumn('reason', 'text', (col) => col.notNull())
    .addColumn('purchase_id', 'uuid', (col) => col.references('purchase.id'))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema
    .createIndex('points_ledger_customer_id_idx')
    .on('points_ledger')
    .column('customer_id')
    .execute()

  await db.schema
    .createTable('coupon')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('code', 'text', (col) => col.notNull())
    .addColumn('customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('kind', 'text', (col) => col.notNull())
    .addColumn('title', 'text', (col) => col.notNull())
    .addColumn('discount_yen', 'integer', (col) => col.notNull().check(sql`discount_yen >= 0`))
    .addColumn('expires_at', 'timestamptz')
    .addColumn('used_at', 'timestamptz')
    .addColumn('used_purchase_id', 'uuid', (col) => col.references('purchase.id'))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('coupon_code_key', ['code'])
    .execute()
  await db.schema.createIndex('coupon_customer_id_idx').on('coupon').column('customer_id').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('coupon').execute()
  await db.schema.dropTable('points_ledger').execute()
  await db.schema.dropTable('purchase_line').execute()
  await db.schema.dropTable('purchase').execute()
  await db.schema.dropTable('product').execute()
}
