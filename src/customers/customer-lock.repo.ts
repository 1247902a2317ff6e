import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import type { Customer } from './customer.repo.ts'

/** Share-locks the customer row: a merge or erasure of it waits for the caller's commit. */
export async function lockCustomerForShare(trx: Db, id: string): Promise<Customer | undefined> {
  return trx.selectFrom('customer').selectAll().where('id', '=', id).forShare().executeTakeFirst()
}

/**
 * Locks, in id order and in one statement, every customer an attach of (kind, value) to
 * `customerId` may merge: the one `customerId` leads to (merges followed) and the identity's
 * current holder. Two attaches going opposite ways (A given B's card while B is given A's)
 * then queue on the same first row instead of each holding its own customer and waiting for
 * the other's (a deadlock).
 */
export async function lockAttachParties(
  trx: Db,
  customerId: string,
  kind: string,
  value: string,
): Promise<void> {
  await sql`
    with recursive chain(id, hop) as (
      select ${customerId}::uuid, 0
      union all
      select c.merged_into_id, chain.hop + 1 from chain join customer c on c.id = chain.id
      where c.merged_into_id is not null and chain.hop < 10
    ),
    parties(id) as (
      (select id from chain order by hop desc limit 1)
      union
      select customer_id from identity where kind = ${kind} and value = ${value}
    )
    select c.id from customer c where c.id in (select id from parties)
    order by c.id
    for update of c`.execute(trx)
}
