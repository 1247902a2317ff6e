import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('customer')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('display_name', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()

  await db.schema
    .createTable('line_user')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('line_uid', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull().check(sql`status in ('friend', 'blocked')`))
    .addColumn('status_changed_at', 'timestamptz', (col) => col.notNull())
    .addColumn('followed_at', 'timestamptz')
    .addColumn('blocked_at', 'timestamptz')
    .addColumn('display_name', 'text')
    .addColumn('language', 'text')
    .addColumn('picture_url', 'text')
    .addColumn('profile_fetched_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('line_user_line_uid_key', ['line_uid'])
    .execute()
  await db.schema
    .createIndex('line_user_customer_id_idx')
    .on('line_user')
    .column('customer_id')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('line_user').execute()
  await db.schema.dropTable('customer').execute()
}
