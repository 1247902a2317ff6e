import type { Kysely } from 'kysely'

/**
 * When a delivery left pending for its job's next try (a LINE 5xx, a timeout, an SMTP error)
 * gets that try at the latest: the sweeper leaves it alone until then, and queues it only once
 * the try is overdue (its job lost).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').addColumn('retry_at', 'timestamptz').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').dropColumn('retry_at').execute()
}
