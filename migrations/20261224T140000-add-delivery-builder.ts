import { type Kysely, sql } from 'kysely'

/**
 * A third kind of delivery content: messages built by code when the delivery is sent (an
 * account-link invite, whose link token LINE issues then), named by `builder`, with the ids it
 * reads in `vars`. LINE only (no email version), like stored messages.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').addColumn('builder', 'text').execute()
  await sql`alter table delivery drop constraint delivery_content_check`.execute(db)
  await sql`alter table delivery add constraint delivery_content_check
    check (messages is not null or template_id is not null or builder is not null)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  // Built ones have nothing stored to send without their builder: those unsent are cancelled.
  await sql`update delivery set messages = '[]'::jsonb,
      status = case when status in ('pending', 'sending') then 'cancelled' else status end
    where builder is not null and messages is null and template_id is null`.execute(db)
  await sql`alter table delivery drop constraint delivery_content_check`.execute(db)
  await sql`alter table delivery add constraint delivery_content_check
    check (messages is not null or template_id is not null)`.execute(db)
  await db.schema.alterTable('delivery').dropColumn('builder').execute()
}
