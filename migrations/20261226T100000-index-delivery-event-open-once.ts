import { type Kysely, sql } from 'kysely'

/**
 * One open per delivery, as one unsubscribe: the open pixel inserted a row on every fetch, so a
 * forwarded mail, a mail app loading images each time the mail is shown, or a proxy fetching it
 * in a loop grew delivery_event without bound and counted one reader many times. The first open
 * of each delivery is kept (earliest, then lowest id), later ones removed, before the unique
 * index that makes the pixel's insert (`on conflict do nothing`) record the first one only.
 * Writes to delivery_event are held from before the delete to the index's end (the migration's
 * transaction holds a lock that lets reads through): an open recorded between the two by a
 * process still running the earlier code (a rolling deploy) made the index fail on a duplicate
 * and start-up with it. Opens, clicks and unsubscribes meanwhile wait for the migration.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`lock table delivery_event in share row exclusive mode`.execute(db)
  await sql`
    delete from delivery_event where id in (
      select id from (
        select id, row_number() over (partition by delivery_id order by created_at, id) as n
        from delivery_event where kind = 'open') opens
      where n > 1)`.execute(db)
  await sql`create unique index delivery_event_open_key on delivery_event (delivery_id)
    where kind = 'open'`.execute(db)
}

/** The later opens removed stay removed. */
export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index delivery_event_open_key`.execute(db)
}
