import { type Kysely, sql } from 'kysely'

/**
 * Whether the customer's name is the LINE nickname Kizuna gave a customer who had none (from the
 * LINE profile) rather than one the shop gave (a customer import): a merge keeps the shop's name
 * over a nickname (an account link's survivor is the LINE friend's customer, named after the
 * nickname, and the merged shop customer's name would be cleared for good). Customers named
 * before this are marked when the name is the profile name of a LINE account they hold or were
 * linked with (a nickname changed and fetched again since is not recognised).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('customer')
    .addColumn('display_name_from_line', 'boolean', (col) => col.notNull().defaultTo(false))
    .execute()
  await sql`
    update customer c set display_name_from_line = true
    where c.display_name is not null
      and exists (
        select 1 from line_user l
        where l.display_name = c.display_name
          and (l.customer_id = c.id
            or l.id in (select a.line_user_id from account_link a where a.customer_id = c.id))
      )
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('customer').dropColumn('display_name_from_line').execute()
}
