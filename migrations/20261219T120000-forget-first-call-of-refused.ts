import { type Kysely, sql } from 'kysely'

/**
 * Whether a request under a delivery's retry key may have reached LINE is now read from
 * `line_first_call_at` alone: a 400 (LINE took nothing under the key) forgets the first call as
 * its outcome is recorded. Until now the first call stayed, and a `LINE 400:` in `last_error`
 * said the key was unused; that text outlived `kizuna deliveries retry`, so a chunk LINE took in
 * the next round, its outcome lost (a worker stopped), looked refused and went again under a new
 * key. Rows failed by a 400 before forget their first call here, as the retry would have. Rows
 * under way again with the old text keep theirs: LINE may have taken their new request.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    update delivery set line_first_call_at = null
    where status = 'failed' and line_first_call_at is not null and last_error like 'LINE 400:%'
  `.execute(db)
}

export async function down(): Promise<void> {
  // The times cleared are not kept; `deliveries retry` cleared them anyway.
}
