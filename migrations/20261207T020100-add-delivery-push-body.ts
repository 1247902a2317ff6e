import type { Kysely } from 'kysely'

/**
 * A delivery keeps the push request it sent (text, byte for byte) while LINE may have accepted
 * it: a retry repeats the same body under the same retry key (LINE-API.md §2.4), instead of one
 * rendered again (a newly signed barcode link, points read again). As multicast_request.body
 * does for a chunk.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').addColumn('push_body', 'text').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').dropColumn('push_body').execute()
}
