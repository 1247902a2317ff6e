import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('customer')
    .addColumn('email', 'text')
    .addColumn('phone', 'text')
    .addColumn('birthday', 'date')
    .addColumn('marketing_consent', 'boolean', (col) => col.notNull().defaultTo(true))
    .addColumn('tier', 'text', (col) => col.notNull().defaultTo('regular'))
    .addColumn('points', 'integer', (col) => col.notNull().defaultTo(0).check(sql`points >= 0`))
    .addColumn('first_purchase_at', 'timestamptz')
    .addColumn('last_purchase_at', 'timestamptz')
    .addColumn('purchase_count', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('total_spent', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('spend_12m', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('merged_into_id', 'uuid', (col) => col.references('customer.id'))
    .addColumn('erased_at', 'timestamptz')
    .execute()

  // One row per way of recognising a person; (kind, value) belongs to one customer only.
  await db.schema
    .createTable('identity')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('kind', 'text', (col) =>
      col
        .notNull()
        .check(
          sql`kind in ('line', 'member_card', 'legacy_card', 'online_customer', 'email', 'phone')`,
        ),
    )
    .addColumn('value', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('identity_kind_value_key', ['kind', 'value'])
    .execute()
  await db.schema
    .createIndex('identity_customer_id_idx')
    .on('identity')
    .column('customer_id')
    .execute()
  await sql`insert into identity (customer_id, kind, value, created_at)
    select customer_id, 'line', line_uid, created_at from line_user`.execute(db)

  // Member card numbers: EAN-13 bodies drawn from this sequence.
  await sql`create sequence member_card_seq start 1`.execute(db)

  await db.schema
    .createTable('merge_audit')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('surviving_customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('merged_customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('reason', 'text', (col) => col.notNull())
    .addColumn('moved', 'jsonb', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('merge_audit').execute()
  await sql`drop sequence member_card_seq`.execute(db)
  await db.schema.dropTable('identity').execute()
  await db.schema
    .alterTable('customer')
    .dropColumn('email')
    .dropColumn('phone')
    .dropColumn('birthday')
    .dropColumn('marketing_consent')
    .dropColumn('tier')
    .dropColumn('points')
    .dropColumn('first_purchase_at')
    .dropColumn('last_purchase_at')
    .dropColumn('purchase_count')
    .dropColumn('total_spent')
    .dropColumn('spend_12m')
    .dropColumn('merged_into_id')
    .dropColumn('erased_at')
    .execute()
}
