import type { Db } from '../platform/db.ts'
import { findIdentityOwner, findSurvivingCustomer, listIdentities } from './customer.repo.ts'
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

/**
 * Whether the customer holds a shop account (online customer id) other than `shopId`: then an
 * email or phone naming them never brings `shopId` to them (two shop accounts are never merged,
 * as the customer import refuses them: OTHER_SHOP_ACCOUNT).
 */
export async function holdsOtherShopAccount(
  db: Db,
  customerId: string,
  shopId: string,
): Promise<boolean> {
  const identities = await listIdentities(db, customerId)
  return identities.some((i) => i.kind === 'online_customer' && i.value !== shopId)
}
