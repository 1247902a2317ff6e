import { type Kysely, sql } from 'kysely'

/**
 * An unmatched online order that names both the shop's customer id and an email waits on the
 * id (pending_identity_*) and on the email too: it attaches to whichever appears first.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('purchase').addColumn('pending_email', 'text').execute()
  await db.schema
    .createIndex('purchase_pending_email_idx')
    .on('purchase')
    .column('pending_email')
    .where(sql.ref('customer_id'), 'is', null)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('purchase_pending_email_idx').execute()
  await db.schema.alterTable('purchase').dropColumn('pending_email').execute()
}
