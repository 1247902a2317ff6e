import type { Transaction } from 'kysely'
import type { DB, Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { type Customer, findSurvivingCustomer } from './customer.repo.ts'
import { customerIdSchema } from './customer.schemas.ts'
import { lockCustomerForShare } from './customer-lock.repo.ts'

/** The customer holding `id`'s data now (merges followed), erased or not; undefined if none. */
export function findCurrentCustomer(db: Db, id: string): Promise<Customer | undefined> {
  return findSurvivingCustomer(db, id)
}

/**
 * The customer an id from a request or command line leads to: a merged id leads to the
 * customer it was merged into (the same person). Erased or not; NOT_FOUND for an unknown id
 * or one that is not a customer id at all.
 */
export async function requireCurrentCustomer(db: Db, id: string): Promise<Customer> {
  const customer = customerIdSchema.safeParse(id).success
    ? await findCurrentCustomer(db, id)
    : undefined
  if (!customer) throw new AppError('NOT_FOUND', `no customer ${id}`)
  return customer
}

/**
 * The customer holding `id`'s data now (merges followed), share-locked in the caller's
 * transaction so that merging or erasing it waits until the caller commits; undefined if none.
 * Only the final row is locked, so a merge running meanwhile cannot deadlock with the caller.
 */
export async function lockSurvivingCustomer(
  trx: Transaction<DB>,
  id: string,
): Promise<Customer | undefined> {
  let next = id
  for (let hops = 0; hops < 20; hops++) {
    const found = await findSurvivingCustomer(trx, next)
    if (!found) return undefined
    const locked = await lockCustomerForShare(trx, found.id)
    if (!locked?.merged_into_id) return locked
    next = locked.merged_into_id
  }
  throw new Error('customer merge chain is too long')
}
