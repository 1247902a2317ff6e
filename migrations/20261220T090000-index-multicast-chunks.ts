import { type Kysely, sql } from 'kysely'

/**
 * A delivery's chunk is looked for by its id when LINE refuses a chunk (writeOutcomes locks every
 * row of it, chunkDeliveries): without an index that read the whole delivery table. Nightly, the
 * chunks whose stored request can go are found by age among those still holding one.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index delivery_multicast_request_id_idx on delivery (multicast_request_id)
    where multicast_request_id is not null`.execute(db)
  await sql`create index multicast_request_body_created_at_idx on multicast_request (created_at)
    where body is not null`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index multicast_request_body_created_at_idx`.execute(db)
  await sql`drop index delivery_multicast_request_id_idx`.execute(db)
}
