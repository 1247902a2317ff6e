import { type Kysely, sql } from 'kysely'

/**
 * Consent per (category, channel) instead of one `customer.marketing_consent` flag. A missing
 * row means the default: transactional granted on both channels, marketing granted on LINE
 * (following the account opts in) and not granted by email (opt-in rule for marketing email).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('consent')
    .addColumn('customer_id', 'uuid', (col) => col.notNull().references('customer.id'))
    .addColumn('category', 'text', (col) =>
      col.notNull().check(sql`category in ('transactional', 'marketing')`),
    )
    .addColumn('channel', 'text', (col) => col.notNull().check(sql`channel in ('line', 'email')`))
    .addColumn('granted', 'boolean', (col) => col.notNull())
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('consent_pkey', ['customer_id', 'category', 'channel'])
    .execute()

  await sql`
    insert into consent (customer_id, category, channel, granted, source)
    select c.id, 'marketing', ch.channel, false, 'import'
    from customer c cross join (values ('line'), ('email')) as ch(channel)
    where not c.marketing_consent`.execute(db)
  // `marketing_consent` defaulted to true for everyone, so true says nothing about email: only
  // the refusals carry over (marketing email needs an explicit yes).
  await db.schema.alterTable('customer').dropColumn('marketing_consent').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('customer')
    .addColumn('marketing_consent', 'boolean', (col) => col.notNull().defaultTo(true))
    .execute()
  await sql`
    update customer c set marketing_consent = false
    where exists (
      select 1 from consent k
      where k.customer_id = c.id and k.category = 'marketing' and not k.granted
    )`.execute(db)
  await db.schema.dropTable('consent').execute()
}
