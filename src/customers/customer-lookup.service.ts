import type { Db } from '../platform/db.ts'
import { findIdentityOwner, findSurvivingCustomer } from './customer.repo.ts'
import type { IdentityKind } from './identity-values.ts'

/** The id of the live customer holding (kind, value), after merges; undefined if none or erased. */
export async function findCustomerByIdentity(
  db: Db,
  kind: IdentityKind,
  value: string,
): Promise<string | undefined> {
  const owner = await findIdentityOwner(db, kind, value)
  if (!owner) return undefined
  const customer = await findSurvivingCustomer(db, owner.customer_id)
  return customer && !customer.erased_at ? customer.id : undefined
}
