import { type Kysely, sql } from 'kysely'

/**
 * Friends whose profile was never fetched, for the sweeper, which read the whole of line_user
 * for them. The condition leaves the status out, or every follow and unfollow would write all of
 * line_user's indexes (no HOT update).
 *
 * The sweeper pages through webhook_event and delivery by (time, id) too, but on their existing
 * time-only indexes (Postgres reads the row comparison as a range of the time, then sorts only
 * the rows sharing a time). Rebuilding those indexes with the id would lock the two tables the
 * webhook and the register write to for as long as the build takes, on a table holding a month
 * of events: webhooks answered 503 meanwhile, and lost where LINE does not redeliver.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createIndex('line_user_profileless_idx')
    .on('line_user')
    .columns(['created_at', 'id'])
    .where(sql.ref('profile_fetched_at'), 'is', null)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('line_user_profileless_idx').execute()
}
