import { sql } from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import type { Db } from '../platform/db.ts'

export type CardOwner = {
  kind: string
  value: string
  customer_id: string
  erased_at: Date | null
  merged_into_id: string | null
}

/** Card identities whose value is one of `values` (a number and its erasure tombstone). */
export async function findCardOwners(db: Db, kinds: string[], values: string[]) {
  return db
    .selectFrom('identity')
    .innerJoin('customer', 'customer.id', 'identity.customer_id')
    .select([
      'identity.kind',
      'identity.value',
      'identity.customer_id',
      'customer.erased_at',
      'customer.merged_into_id',
    ])
    .where('identity.kind', 'in', kinds)
    .where('identity.value', 'in', values)
    .execute()
}

export async function findCouponOwner(db: Db, code: string) {
  return db
    .selectFrom('coupon')
    .innerJoin('customer', 'customer.id', 'coupon.customer_id')
    .select(['coupon.customer_id', 'customer.erased_at', 'customer.merged_into_id'])
    .where('coupon.code', '=', code)
    .executeTakeFirst()
}

export async function findCustomerLink(db: Db, id: string) {
  return db
    .selectFrom('customer')
    .select(['id as customer_id', 'erased_at', 'merged_into_id'])
    .where('id', '=', id)
    .executeTakeFirst()
}

/** Name, tier, points and the coupons usable now (soonest to expire first), in one query. */
export async function findMemberSummary(db: Db, customerId: string) {
  return db
    .selectFrom('customer')
    .select((eb) => [
      'customer.id',
      'customer.display_name',
      'customer.tier',
      'customer.points',
      jsonArrayFrom(
        eb
          .selectFrom('coupon')
          .select(['code', 'title', 'discount_yen', 'expires_at'])
          .whereRef('coupon.customer_id', '=', 'customer.id')
          .where('coupon.used_at', 'is', null)
          .where((w) => w.or([w('expires_at', 'is', null), w('expires_at', '>', sql<Date>`now()`)]))
          .orderBy(sql`expires_at asc nulls last`)
          .limit(20),
      ).as('coupons'),
    ])
    .where('customer.id', '=', customerId)
    .executeTakeFirstOrThrow()
}

export async function findStoreCodeById(db: Db, id: string) {
  const row = await db.selectFrom('store').select('code').where('id', '=', id).executeTakeFirst()
  return row?.code
}

export async function findPurchaseResult(db: Db, purchaseId: string) {
  return db
    .selectFrom('purchase')
    .select(['id', 'customer_id', 'total', 'points_earned', 'points_used', 'result'])
    .where('id', '=', purchaseId)
    .executeTakeFirstOrThrow()
}

export async function savePurchaseResult(db: Db, purchaseId: string, result: unknown) {
  await db
    .updateTable('purchase')
    .set({ result: JSON.stringify(result) })
    .where('id', '=', purchaseId)
    .execute()
}
