import { type Kysely, sql } from 'kysely'

/**
 * What LINE's default rich menu and each alias Kizuna made point at, as Kizuna last set them
 * (`pointer`: 'default', or 'alias:<richMenuAliasId>'): a deploy compares them with the live
 * menus before deleting any, so a default or alias moved by a stopped deploy is pointed back
 * even when its folder is unchanged. `line_rich_menu_id` null: the default was cleared.
 * `settled` false: a call was sent and its answer not recorded (a crash, a timeout), so what
 * LINE points at is unknown and the next deploy sets it again.
 *
 * Before this table a deploy trusted that an unchanged folder's alias and the default were where
 * its live version put them, and remembered an alias or default to settle on the retired rows
 * (`alias`, `is_default`, cleared once settled). Those are carried over as unsettled (set again,
 * moved or deleted by the next deploy), as is every alias a live or pending version names.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create table richmenu_pointer (
    pointer text primary key check (pointer = 'default' or pointer like 'alias:%'),
    line_rich_menu_id text,
    settled boolean not null default false,
    updated_at timestamptz not null default now()
  )`.execute(db)
  await sql`insert into richmenu_pointer (pointer)
    select distinct 'alias:' || alias from richmenu_version where alias is not null
    union
    select 'default' from richmenu_version where is_default
    on conflict do nothing`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table richmenu_pointer`.execute(db)
}
