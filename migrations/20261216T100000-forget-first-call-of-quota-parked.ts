import { type Kysely, sql } from 'kysely'

/**
 * Until now a monthly-quota 429 was taken as LINE taking nothing, even on a repeat of a request
 * that got a 5xx: the outcome dropped the stored push and `kizuna deliveries retry` forgot every
 * quota_exceeded row's first call. Now only a quota 429 to the first request under a key forgets
 * it (at once), and the retry keeps the first call of the rest. Rows parked before cannot be told
 * apart. Those whose request is gone (a push's, dropped by that outcome) keep the old reading,
 * their first call forgotten here as the retry would have, so they go again as new sends rather
 * than fail with nothing to repeat. A multicast chunk's request was not dropped: its rows sent as
 * new would join a new chunk under a new key while the old one may have been delivered, so they
 * keep their first call and go again as the stored chunk under its key (or not at all, once the
 * key is too old), as rows parked from now on do.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    update delivery d set line_first_call_at = null
    where d.status = 'quota_exceeded' and d.line_first_call_at is not null
      and d.push_body is null
      and not exists (select 1 from multicast_request mr
        where mr.id = d.multicast_request_id and mr.body is not null)
  `.execute(db)
}

export async function down(): Promise<void> {
  // The times cleared are not kept; the old code cleared them on `deliveries retry` anyway.
}
