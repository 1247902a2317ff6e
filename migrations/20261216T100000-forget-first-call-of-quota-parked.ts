import { type Kysely, sql } from 'kysely'

/**
 * Until now a monthly-quota 429 was taken as LINE taking nothing, even on a repeat of a request
 * that got a 5xx: the outcome dropped the stored push and `kizuna deliveries retry` forgot every
 * quota_exceeded row's first call. Now only a quota 429 to the first request under a key forgets
 * it (at once), and the retry keeps the first call of the rest. Rows parked before cannot be told
 * apart (their pushes are gone): they keep the old reading, their first call forgotten here as
 * the retry would have, so they go again as new sends rather than fail with nothing to repeat.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    update delivery set line_first_call_at = null
    where status = 'quota_exceeded' and line_first_call_at is not null
  `.execute(db)
}

export async function down(): Promise<void> {
  // The times cleared are not kept; the old code cleared them on `deliveries retry` anyway.
}
