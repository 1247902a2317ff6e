import { type Kysely, sql } from 'kysely'

/**
 * Whether a rich-menu relink is owed (one row). A deploy that changed menus sets `owed` (counting
 * `generation` up) in the transaction that makes them live, before it queues the relink in Redis;
 * a relink that ran to the end clears it, unless a deploy owed another meanwhile (the generation
 * it read moved on). A deploy that finds one owed queues it again, so a relink Redis did not take
 * (a timeout after the menus went live) is queued by the job's retry or the next start, not only
 * by the nightly relink.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create table richmenu_relink (
    id boolean primary key default true check (id),
    owed boolean not null default false,
    generation bigint not null default 0,
    updated_at timestamptz not null default now()
  )`.execute(db)
  await sql`insert into richmenu_relink default values`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table richmenu_relink`.execute(db)
}
