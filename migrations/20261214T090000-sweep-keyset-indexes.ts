import { type Kysely, sql } from 'kysely'

/**
 * The sweeper reads unfinished rows a page at a time, each page after the last row of the one
 * before, by (time, id): many rows share a time (one statement writes a whole batch of webhook
 * events, or a campaign's deliveries). The indexes it reads carry the id after the time, so each
 * page is a range of the index. Friends whose profile was never fetched get a small index of
 * their own (the sweeper read the whole of line_user for them); its condition leaves the status
 * out, or every follow and unfollow would write all of line_user's indexes (no HOT update).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('webhook_event_pending_idx').execute()
  await db.schema
    .createIndex('webhook_event_pending_idx')
    .on('webhook_event')
    .columns(['received_at', 'id'])
    .where(sql.ref('status'), '=', 'pending')
    .execute()
  await db.schema.dropIndex('delivery_unfinished_idx').execute()
  await db.schema
    .createIndex('delivery_unfinished_idx')
    .on('delivery')
    .columns(['updated_at', 'id'])
    .where(sql<boolean>`status in ('pending', 'sending')`)
    .execute()
  await db.schema
    .createIndex('line_user_profileless_idx')
    .on('line_user')
    .columns(['created_at', 'id'])
    .where(sql.ref('profile_fetched_at'), 'is', null)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('line_user_profileless_idx').execute()
  await db.schema.dropIndex('delivery_unfinished_idx').execute()
  await db.schema
    .createIndex('delivery_unfinished_idx')
    .on('delivery')
    .column('updated_at')
    .where(sql<boolean>`status in ('pending', 'sending')`)
    .execute()
  await db.schema.dropIndex('webhook_event_pending_idx').execute()
  await db.schema
    .createIndex('webhook_event_pending_idx')
    .on('webhook_event')
    .column('received_at')
    .where(sql.ref('status'), '=', 'pending')
    .execute()
}
