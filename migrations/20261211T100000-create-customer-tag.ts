import { type Kysely, sql } from 'kysely'

/**
 * Marketers' tags on customers ("vip", "ソファ購入"), stored normalised (NFKC, lower case,
 * 1–50 characters; the application checks the rest). One row per customer and tag; the tag
 * index finds everyone carrying a tag (segments, exports).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('customer_tag')
    .addColumn('customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('tag', 'text', (col) => col.notNull().check(sql`char_length(tag) between 1 and 50`))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('customer_tag_pkey', ['customer_id', 'tag'])
    .execute()
  await db.schema
    .createIndex('customer_tag_tag_idx')
    .on('customer_tag')
    .columns(['tag', 'customer_id'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('customer_tag').execute()
}
