import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('delivery')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('dedupe_key', 'text', (col) => col.notNull())
    .addColumn('kind', 'text', (col) => col.notNull())
    .addColumn('category', 'text', (col) =>
      col
        .notNull()
        .defaultTo('transactional')
        .check(sql`category in ('transactional', 'marketing')`),
    )
    .addColumn('customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('line_user_id', 'uuid', (col) => col.references('line_user.id'))
    .addColumn('messages', 'jsonb', (col) => col.notNull())
    .addColumn('reply_token', 'text')
    .addColumn('reply_token_expires_at', 'timestamptz')
    .addColumn('channel', 'text', (col) => col.check(sql`channel in ('line', 'email')`))
    .addColumn('status', 'text', (col) =>
      col
        .notNull()
        .defaultTo('pending')
        .check(
          sql`status in ('pending', 'sending', 'sent', 'failed', 'skipped', 'quota_exceeded')`,
        ),
    )
    .addColumn('skip_reason', 'text')
    .addColumn('line_retry_key', 'uuid', (col) => col.notNull().defaultTo(sql`gen_random_uuid()`))
    .addColumn('line_request_id', 'text')
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .addColumn('send_after', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('sent_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('delivery_dedupe_key_key', ['dedupe_key'])
    .execute()
  await db.schema
    .createIndex('delivery_unfinished_idx')
    .on('delivery')
    .column('updated_at')
    .where(sql<boolean>`status in ('pending', 'sending')`)
    .execute()
  await db.schema
    .createIndex('delivery_customer_id_idx')
    .on('delivery')
    .column('customer_id')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('delivery').execute()
}
