import { type Kysely, sql } from 'kysely'

/**
 * Every consent value written, appended and never changed: who (source, the API key when staff
 * made it), when (the tap's time by LINE's clock for a postback; when it was recorded) and the
 * value before it. `consent` holds only the latest, and the next change overwrote its source and
 * time, so nobody could tell who opted a person in to marketing email and when (the record
 * Japan's Specified Electronic Mail Act expects a sender to keep). No personal data: ids, flags
 * and times, kept through an erasure like the other audit rows.
 *
 * The rows `consent` holds now start the history (recorded at their `updated_at`), their value
 * before unknown (`previous` null), so the one record of who set them is not lost at the next
 * change.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('consent_history')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`uuid_v7()`))
    .addColumn('customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('category', 'text', (col) =>
      col.notNull().check(sql`category in ('transactional', 'marketing')`),
    )
    .addColumn('channel', 'text', (col) => col.notNull().check(sql`channel in ('line', 'email')`))
    .addColumn('granted', 'boolean', (col) => col.notNull())
    .addColumn('previous', 'boolean')
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('api_key_id', 'uuid', (col) => col.references('api_key.id'))
    .addColumn('decided_at', 'timestamptz')
    // The clock's time, not the transaction's: two writes of one value in one transaction (a
    // merge, then the import row that caused it) keep their order.
    .addColumn('recorded_at', 'timestamptz', (col) =>
      col.notNull().defaultTo(sql`clock_timestamp()`),
    )
    .execute()
  await db.schema
    .createIndex('consent_history_customer_id_idx')
    .on('consent_history')
    .columns(['customer_id', 'recorded_at', 'id'])
    .execute()
  await sql`
    insert into consent_history
      (customer_id, category, channel, granted, previous, source, decided_at, recorded_at)
    select customer_id, category, channel, granted, null, source, decided_at, updated_at
    from consent`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('consent_history').execute()
}
