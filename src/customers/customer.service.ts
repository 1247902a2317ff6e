import type { Db } from '../platform/db.ts'
import { insertCustomerRow } from './customer.repo.ts'

/** A new, empty customer (identities are attached by the caller in the same transaction). */
export function createCustomer(db: Db): Promise<string> {
  return insertCustomerRow(db)
}
