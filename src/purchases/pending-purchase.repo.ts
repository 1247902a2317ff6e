import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

/**
 * The shop account (online customer id) named by the oldest order waiting on `email` (by time
 * ordered, then id), leaving out those another customer than `holderId` holds.
 */
export async function findShopAccountWaitingOn(
  db: Db,
  email: string,
  holderId: string,
): Promise<string | undefined> {
  const { rows } = await sql<{ shop_id: string }>`
    select p.pending_identity_value as shop_id from purchase p
    where p.customer_id is null and p.pending_email = ${email}
      and p.pending_identity_kind = 'online_customer'
      and not exists (select from identity i where i.kind = 'online_customer'
        and i.value = p.pending_identity_value and i.customer_id <> ${holderId})
    order by p.purchased_at, p.id
    limit 1`.execute(db)
  return rows[0]?.shop_id
}
