import type { Kysely } from 'kysely'

/**
 * A multicast chunk keeps the exact request it sent (text, byte for byte): a retry repeats the same body under the
 * same retry key, even when only some of its deliveries are being retried.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('multicast_request').addColumn('body', 'text').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('multicast_request').dropColumn('body').execute()
}
