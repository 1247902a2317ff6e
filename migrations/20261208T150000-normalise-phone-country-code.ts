import { type Kysely, sql } from 'kysely'

/**
 * Phones are now stored as the domestic number: "+81 90-1234-5678" is "09012345678", where it
 * used to be "819012345678". Stored ones of the old form take the new one, so the same number
 * typed either way stays one identity. One whose new form another identity already holds is left
 * as it is (two customers would otherwise share it; merging them is the operator's call).
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
