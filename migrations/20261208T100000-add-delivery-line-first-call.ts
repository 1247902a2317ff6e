import { type Kysely, sql } from 'kysely'

/**
 * When a request under a delivery's retry key first went out to LINE (its own key for a push,
 * its chunk's for a multicast), set once in the statement that stores the request before the
 * call. LINE honours a key for 24 hours from the first request (LINE-API.md §2.4): a failed
 * delivery whose outcome is unknown may be sent again only within that time, or it could arrive
 * twice. Rows already in a multicast chunk take the chunk's creation time; for earlier pushes
 * the time was never recorded.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').addColumn('line_first_call_at', 'timestamptz').execute()
  await sql`
    update delivery d set line_first_call_at = mr.created_at
    from multicast_request mr
    where mr.id = d.multicast_request_id
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').dropColumn('line_first_call_at').execute()
}
