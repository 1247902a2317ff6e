import { type Kysely, sql } from 'kysely'

/**
 * A message LINE delivers after its unsend (redelivered after a 503, or simply out of order)
 * looks the stored unsend up by message id, to be forgotten rather than answered. Only unsend
 * events are indexed: a small index, read once per message event.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index webhook_event_unsend_message_idx
    on webhook_event ((payload->'unsend'->>'messageId'))
    where type = 'unsend'`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index webhook_event_unsend_message_idx`.execute(db)
}
