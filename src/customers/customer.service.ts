import type { Db } from '../platform/db.ts'
import { insertCustomerRow, recomputeCustomerStats, type TierThreshold } from './customer.repo.ts'

/** A new, empty customer (identities are attached by the caller in the same transaction). */
export function createCustomer(db: Db): Promise<string> {
  return insertCustomerRow(db)
}

/** Recounts a customer's purchase stats and tier from their purchases (voided ones excluded). */
export function refreshCustomerStats(
  db: Db,
  customerId: string,
  thresholds: TierThreshold[],
): Promise<void> {
  return recomputeCustomerStats(db, customerId, thresholds)
}
