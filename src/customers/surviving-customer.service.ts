import { sql, type Transaction } from 'kysely'
import { type DB, type Db, inTransaction } from '../platform/db.ts'
import { AppError, invalidField } from '../platform/errors.ts'
import { type Customer, findSurvivingCustomer } from './customer.repo.ts'
import { customerIdSchema } from './customer.schemas.ts'
import { lockCustomerForShare } from './customer-lock.repo.ts'
import { MAX_MERGE_HOPS, MergeChainTooLong } from './surviving-customer.repo.ts'

/** The customer holding `id`'s data now (merges followed), erased or not; undefined if none. */
export function findCurrentCustomer(db: Db, id: string): Promise<Customer | undefined> {
  return findSurvivingCustomer(db, id)
}

/**
 * The customer an id from a request or command line leads to: a merged id leads to the
 * customer it was merged into (the same person). Erased or not; NOT_FOUND for an unknown id,
 * BAD_REQUEST naming `id` for one that is not a customer id at all (requireWith).
 */
export function requireCurrentCustomer(db: Db, id: string): Promise<Customer> {
  return requireWith(id, () => findCurrentCustomer(db, id))
}

/**
 * Runs `work` in one transaction (the caller's, when `db` is one) with the customer `id` leads
 * to (as requireCurrentCustomer finds it: NOT_FOUND for none) share-locked by
 * lockSurvivingCustomer: a merge or erasure of it committing meanwhile is waited for and
 * followed, so what `work` reads is the survivor's, not a merged-away id with none of its rows.
 */
export function withCurrentCustomer<T>(
  db: Db,
  id: string,
  work: (trx: Transaction<DB>, customer: Customer) => Promise<T>,
): Promise<T> {
  return inTransaction(db, async (trx) =>
    work(trx, await requireWith(id, () => lockSurvivingCustomer(trx, id))),
  )
}

/**
 * The customer `find` finds for `id`. An id that is no uuid is a 400 naming `id` and not
 * quoting it: what was pasted in the wrong field may be an email or a phone number.
 */
async function requireWith(
  id: string,
  find: () => Promise<Customer | undefined>,
): Promise<Customer> {
  if (!customerIdSchema.safeParse(id).success) {
    throw invalidField('id', 'not a customer id (a UUID)')
  }
  const customer = await find()
  if (!customer) throw new AppError('NOT_FOUND', `no customer ${id}`)
  return customer
}

/**
 * The customer holding `id`'s data now (merges followed), share-locked in the caller's
 * transaction so that merging or erasing it waits until the caller commits; undefined if none.
 */
export function lockSurvivingCustomer(
  trx: Transaction<DB>,
  id: string,
): Promise<Customer | undefined> {
  return lockSurvivorWith(trx, id, (found) => lockCustomerForShare(trx, found))
}

/**
 * Follows merges from `id` (findSurvivingCustomer: a chain longer than MAX_MERGE_HOPS is
 * MergeChainTooLong) and locks the customer reached with `lock`, which returns the row as it
 * stands once locked; undefined for an unknown id. Only that row is locked, not the merged ones
 * on the way. One a merge left merged while we waited for its lock (the walk read it before the
 * merge committed) is let go before the walk runs again from it (MAX_MERGE_HOPS rounds at most):
 * each round's lock is taken under a savepoint, rolled back to when the row turned out merged.
 * Kept, it deadlocked with a merge of its survivor: that merge re-points the rows merged into
 * the one it merges (this one among them) while the walk waits for that survivor.
 */
export async function lockSurvivorWith<T extends { merged_into_id: string | null }>(
  trx: Transaction<DB>,
  id: string,
  lock: (survivorId: string) => Promise<T | undefined>,
): Promise<T | undefined> {
  let next = id
  for (let round = 0; round < MAX_MERGE_HOPS; round++) {
    const found = await findSurvivingCustomer(trx, next)
    if (!found) return undefined
    await sql`savepoint kizuna_survivor_lock`.execute(trx)
    const locked = await lock(found.id)
    if (!locked?.merged_into_id) {
      await sql`release savepoint kizuna_survivor_lock`.execute(trx)
      return locked
    }
    await sql`rollback to savepoint kizuna_survivor_lock`.execute(trx)
    next = locked.merged_into_id
  }
  throw new MergeChainTooLong()
}
