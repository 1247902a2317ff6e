import { type Kysely, sql } from 'kysely'

/**
 * 20261208T150000 again: from then until the phone rule changed (20261226), "81-90-1234-5678" (a
 * spreadsheet dropped the +) and "+ 81 90…" were stored as "819012345678"; they are now read as
 * the domestic "09012345678", so a stored old form would no longer match the same number sent
 * again (a second customer, a lookup answering 404). Stored ones take the new form, as then; one
 * whose new form another identity already holds is left as it is (merging two customers is the
 * operator's call).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    update identity i set value = '0' || substr(i.value, 3)
    where i.kind = 'phone' and i.value ~ '^81[1-9][0-9]{8,9}$'
      and not exists (
        select 1 from identity o where o.kind = 'phone' and o.value = '0' || substr(i.value, 3)
      )
  `.execute(db)
  await sql`
    update customer c set phone = '0' || substr(c.phone, 3)
    where c.phone ~ '^81[1-9][0-9]{8,9}$'
      and not exists (
        select 1 from identity o
        where o.kind = 'phone' and o.value = '0' || substr(c.phone, 3) and o.customer_id <> c.id
      )
  `.execute(db)
}

export async function down(): Promise<void> {
  // "090…" cannot be told apart from a number typed without +81; they stay.
}
