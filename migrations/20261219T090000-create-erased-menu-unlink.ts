import { type Kysely, sql } from 'kysely'

/**
 * The rich menus still to unlink at LINE for LINE users an erasure took away (or a link that
 * landed after one): written in the erasure's transaction, deleted once LINE confirmed the
 * unlink. The LINE user id is what LINE needs and is personal data: a row lives only until
 * LINE's answer (the command's own call right after the commit, else the sweeper's retries,
 * `not_before` spacing them out), and at most 30 days, then it is dropped unconfirmed.
 * `generation` counts the times the unlink was owed again (another erasure, a late link) while
 * the row waited: a round deletes or defers only the generation it claimed.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create table erased_menu_unlink (
    id uuid primary key default uuid_v7(),
    line_uid text not null unique,
    created_at timestamptz not null default now(),
    generation int not null default 0,
    tries int not null default 0,
    not_before timestamptz,
    last_failure text
  )`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table erased_menu_unlink`.execute(db)
}
