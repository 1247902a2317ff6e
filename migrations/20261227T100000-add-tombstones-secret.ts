import { type Kysely, sql } from 'kysely'

/**
 * The key of the tombstones of guessable values (an erased phone: tombstones.ts), generated inside
 * the database as `tokens` is. Kept by `down`: a new key would no longer find the tombstones the
 * old one wrote, and an old import would bring their erased people back.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`insert into app_secret (name, value) values
    ('tombstones', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
    on conflict (name) do nothing`.execute(db)
}

export async function down(_db: Kysely<any>): Promise<void> {}
