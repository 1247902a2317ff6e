import type { Db } from '../platform/db.ts'
import type { Customer } from './customer.repo.ts'

/** Share-locks the customer row: a merge or erasure of it waits for the caller's commit. */
export async function lockCustomerForShare(trx: Db, id: string): Promise<Customer | undefined> {
  return trx.selectFrom('customer').selectAll().where('id', '=', id).forShare().executeTakeFirst()
}
