import { type Kysely, sql } from 'kysely'

/**
 * Deliveries become message intents: a template and its variables (rendered at send time, when
 * the channel is chosen) or ready LINE messages (replies built in code). A delivery may be
 * cancelled (a voided receipt) and may wait for quiet hours or the weekly cap (send_after).
 * Multicast chunks keep their retry key in their own row so a retry resends the same chunk.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('multicast_request')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('line_retry_key', 'uuid', (col) => col.notNull().defaultTo(sql`gen_random_uuid()`))
    .addColumn('line_request_id', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()

  await sql`alter table delivery alter column messages drop not null`.execute(db)
  await sql`alter table delivery drop constraint delivery_status_check`.execute(db)
  await sql`alter table delivery add constraint delivery_status_check check (status in
    ('pending', 'sending', 'sent', 'failed', 'skipped', 'quota_exceeded', 'cancelled'))`.execute(db)
  await db.schema
    .alterTable('delivery')
    .addColumn('template_id', 'text')
    .addColumn('vars', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('over_cap', 'text', (col) =>
      col.notNull().defaultTo('defer').check(sql`over_cap in ('defer', 'skip')`),
    )
    .addColumn('multicast_request_id', 'uuid', (col) => col.references('multicast_request.id'))
    .addColumn('email_message_id', 'text')
    .execute()
  await sql`alter table delivery add constraint delivery_content_check
    check (messages is not null or template_id is not null)`.execute(db)
  // The weekly marketing cap counts a customer's recent marketing sends.
  await db.schema
    .createIndex('delivery_marketing_sent_idx')
    .on('delivery')
    .columns(['customer_id', 'sent_at'])
    .where(sql<boolean>`category = 'marketing' and status = 'sent'`)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('delivery_marketing_sent_idx').execute()
  await sql`alter table delivery drop constraint delivery_content_check`.execute(db)
  await db.schema
    .alterTable('delivery')
    .dropColumn('template_id')
    .dropColumn('vars')
    .dropColumn('over_cap')
    .dropColumn('multicast_request_id')
    .dropColumn('email_message_id')
    .execute()
  await sql`delete from delivery where status = 'cancelled' or messages is null`.execute(db)
  await sql`alter table delivery drop constraint delivery_status_check`.execute(db)
  await sql`alter table delivery add constraint delivery_status_check check (status in
    ('pending', 'sending', 'sent', 'failed', 'skipped', 'quota_exceeded'))`.execute(db)
  await sql`alter table delivery alter column messages set not null`.execute(db)
  await db.schema.dropTable('multicast_request').execute()
}
