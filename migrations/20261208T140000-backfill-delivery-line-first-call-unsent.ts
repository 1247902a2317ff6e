import { type Kysely, sql } from 'kysely'

/**
 * The backfill before this one asked for `channel = 'line'`, but a delivery's channel is written
 * only when it is sent: no unsent row has one, so it filled in nothing and a failed push from
 * before the upgrade could still go again under a key LINE may have forgotten (24 hours). Here
 * the rows tried but not sent take their creation time, no later than a first call, unless their
 * last error says no request went to LINE: a template that did not render, an email, LINE's 400
 * (a refusal). A pending row takes it only with a push kept for its retry (one deferred by quiet
 * hours or the weekly cap never went out). Multicast rows have their chunk's time already.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    update delivery set line_first_call_at = created_at
    where line_first_call_at is null and attempts > 0
      and (
        (status = 'failed'
          and channel is distinct from 'email'
          and coalesce(last_error, '') not like 'template:%'
          and coalesce(last_error, '') not like 'email:%'
          and coalesce(last_error, '') not like 'LINE 400:%')
        or (status in ('pending', 'sending') and push_body is not null)
      )
  `.execute(db)
}

export async function down(): Promise<void> {
  // The times filled in cannot be told from recorded ones; they stay.
}
