import type { Kysely } from 'kysely'

/**
 * How many rate-limit 429s LINE answered a delivery since it was last parked for them: the send
 * job backs it off longer after each, and parks it (failed) at LINE_RATE_LIMIT_TRIES, so a
 * person LINE keeps refusing is not tried for ever. Parking sets it back to 0: a delivery
 * `kizuna deliveries retry` requeues gets as many tries again.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('delivery')
    .addColumn('rate_limit_tries', 'integer', (col) => col.notNull().defaultTo(0))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('delivery').dropColumn('rate_limit_tries').execute()
}
