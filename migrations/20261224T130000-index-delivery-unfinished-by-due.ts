import { type Kysely, sql } from 'kysely'

/**
 * The sweeper's index of unfinished deliveries is keyed by when a row can next be stale: the
 * later of its last write and its due time (greatest(updated_at, send_after)), not its last write
 * alone. Rows deferred by quiet hours or the post-purchase delay are pending with the time they
 * were written: a campaign deferred overnight was in the range every sweep (every 30 s) read,
 * each of its rows fetched to be left out as not due yet (500,000 rows for a campaign of as
 * many). Keyed by the later time, they are past the range until they are due.
 *
 * The index is replaced, not joined by another: a delivery's insert and each of its updates
 * (which all set updated_at) write one entry as before, of the same size.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`drop index delivery_unfinished_idx`.execute(db)
  await sql`create index delivery_unfinished_idx on delivery ((greatest(updated_at, send_after)))
    where status in ('pending', 'sending')`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index delivery_unfinished_idx`.execute(db)
  await sql`create index delivery_unfinished_idx on delivery (updated_at)
    where status in ('pending', 'sending')`.execute(db)
}
