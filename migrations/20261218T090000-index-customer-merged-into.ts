import { type Kysely, sql } from 'kysely'

/**
 * A merge re-points the rows merged before into the customer it empties
 * (`merged_into_id = <merged>`, merge.service.ts): without an index, a scan of every customer (a
 * million rows) inside the register scan or account link that merges. Only merged rows are
 * indexed: a small index that other inserts and updates leave alone.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index customer_merged_into_id_idx on customer (merged_into_id)
    where merged_into_id is not null`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index customer_merged_into_id_idx`.execute(db)
}
