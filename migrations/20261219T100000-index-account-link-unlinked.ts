import { type Kysely, sql } from 'kysely'

/**
 * An erasure follows the unlinks of the customer it erases, on either side
 * (findLinkedCustomers): without these it read every unlinked account link of the shop, more
 * than once per erasure. Only unlinked rows are indexed: an active link is never followed.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index account_link_unlinked_customer_id_idx on account_link (customer_id)
    where unlinked_to_customer_id is not null`.execute(db)
  await sql`create index account_link_unlinked_to_customer_id_idx
    on account_link (unlinked_to_customer_id) where unlinked_to_customer_id is not null`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index account_link_unlinked_to_customer_id_idx`.execute(db)
  await sql`drop index account_link_unlinked_customer_id_idx`.execute(db)
}
