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
 * Whether `shopId` would be the customer's second shop account (online customer id): they hold
 * another and not this one. Then nothing brings `shopId` to them (two shop accounts are never
 * merged, as the customer import refuses them: OTHER_SHOP_ACCOUNT).
 */
export async function wouldBeSecondShopAccount(
  db: Db,
  customerId: string,
  shopId: string,
): Promise<boolean> {
  const identities = await listIdentities(db, customerId)
  const shops = identities.filter((i) => i.kind === 'online_customer').map((i) => i.value)
  return shops.length > 0 && !shops.includes(shopId)
}
