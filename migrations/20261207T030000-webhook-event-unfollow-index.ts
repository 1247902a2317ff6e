import { type Kysely, sql } from 'kysely'

/**
 * An unfollow from a LINE user Kizuna does not know is kept only as its webhook event; a follow
 * that LINE delivers after it, but that happened before it, looks the unfollow up there by user
 * id (identity.service). Only unfollow events are indexed: a small index, read once per new
 * friend.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index webhook_event_unfollow_user_idx
    on webhook_event ((payload->'source'->>'userId'), occurred_at)
    where type = 'unfollow'`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index webhook_event_unfollow_user_idx`.execute(db)
}
