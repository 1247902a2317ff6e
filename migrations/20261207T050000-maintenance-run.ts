import { type Kysely, sql } from 'kysely'

/**
 * When each maintenance task last finished, and what it ran with: the nightly 12-month spend
 * refresh picks up from its last successful run (however many nights were missed) and re-tiers
 * everyone when the tier thresholds changed since.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create table maintenance_run (
    name text primary key,
    last_success_at timestamptz not null,
    state jsonb not null default '{}',
    updated_at timestamptz not null default now()
  )`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table maintenance_run`.execute(db)
}
