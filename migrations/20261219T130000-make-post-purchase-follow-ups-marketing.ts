import { type Kysely, sql } from 'kysely'

/**
 * The post-purchase follow-up recommends products, which is advertising: it is written as
 * `marketing` from now on (marketing consent, quiet hours and the weekly cap apply; by email only
 * once the person agreed). Follow-ups written before as `transactional` that may still be sent
 * (due later, under way, waiting for a retry, or failed or parked and so open to `kizuna
 * deliveries retry`) become `marketing` too. Those sent, skipped or cancelled stay as they went.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await recategorise(db, 'transactional', 'marketing')
}

export async function down(db: Kysely<any>): Promise<void> {
  // The code before wrote every follow-up as transactional.
  await recategorise(db, 'marketing', 'transactional')
}

async function recategorise(db: Kysely<any>, from: string, to: string): Promise<void> {
  await sql`
    update delivery set category = ${to}
    where kind = 'post-purchase' and category = ${from}
      and status in ('pending', 'sending', 'failed', 'quota_exceeded')
  `.execute(db)
}
