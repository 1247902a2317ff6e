import { type ExpressionBuilder, expressionBuilder, type RawBuilder, sql } from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import {
  assertChainEnded,
  survivorCtes,
  survivorIdOf,
} from '../customers/surviving-customer.repo.ts'
import type { DB, Db } from '../platform/db.ts'
import { executePrepared } from '../platform/prepared.ts'
import type { ScanVia } from './barcode-owner.ts'

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

/**
 * Barcode → its customer, as a `start` for a statement that follows merges (recordPurchaseFor's,
 * findScannedMember's): a live
 * member card, else a live legacy card (`codes` in order), else (`withCoupon`, and no card
 * identity at all, not even a tombstone) the coupon's owner. No row: unknown or erased, which
 * resolveBarcode tells apart.
 */
export function cardOwnerStart(opts: {
  barcode: string
  codes: string[]
  kinds: string[]
  values: string[]
  withCoupon: boolean
}) {
  return sql`
    with owners as (
      select i.kind, i.value, i.customer_id from identity i
      where i.kind = any(${opts.kinds}::text[]) and i.value = any(${opts.values}::text[])
    )
    select customer_id, via, case when via = 'coupon' then ${opts.barcode}::text end as coupon from (
      select customer_id,
        case when kind = 'member_card' then 'member_card' else 'legacy_card' end as via,
        case when kind = 'member_card' then 0 else array_position(${opts.codes}::text[], value) end
          as rank
      from owners where value = any(${opts.codes}::text[])
      union all
      select cp.customer_id, 'coupon', null from coupon cp
      where ${opts.withCoupon}::boolean and cp.code = ${opts.barcode}
        and not exists (select 1 from owners)
    ) s
    order by rank nulls last limit 1`
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

/**
 * Name, tier, points and the coupons usable now (soonest to expire first), in one query, of the
 * customer holding `customerId`'s data now: one merged since it was read (a link committing
 * between a scan's lookup and this) leads to its survivor, not to the emptied merged row. A chain
 * longer than the walk follows is MergeChainTooLong (assertChainEnded), as every walk.
 */
export async function findMemberSummary(db: Db, customerId: string) {
  const { merged_into_id, ...summary } = await db
    .selectFrom('customer')
    .select((eb) => [
      'customer.id',
      'customer.display_name',
      'customer.tier',
      'customer.points',
      'customer.merged_into_id',
      usableCoupons(eb).as('coupons'),
    ])
    .where('customer.id', '=', survivorIdOf(customerId))
    .executeTakeFirstOrThrow()
  assertChainEnded({ merged_into_id })
  return summary
}

/** The coupons `customer` can use now, soonest to expire first (20 at most), as a JSON array. */
function usableCoupons(eb: ExpressionBuilder<DB, 'customer'>) {
  return jsonArrayFrom(
    eb
      .selectFrom('coupon')
      .select(['code', 'title', 'discount_yen', 'expires_at'])
      .whereRef('coupon.customer_id', '=', 'customer.id')
      .where('coupon.used_at', 'is', null)
      .where((w) => w.or([w('expires_at', 'is', null), w('expires_at', '>', sql<Date>`now()`)]))
      .orderBy(sql`expires_at asc nulls last`)
      .limit(20),
  )
}

export type ScannedMember = Awaited<ReturnType<typeof findMemberSummary>> & {
  /** How the barcode named them (cardOwnerStart's `via`). */
  via: ScanVia
  /** How many merges were followed to this customer. */
  hop: number
  erased: boolean
  /** Still merged: the chain was cut short (survivorCtes). */
  merged: boolean
}

/**
 * The customer `start` finds (cardOwnerStart), followed through merges up to an erased one, and
 * their summary (findMemberSummary's), in one prepared statement (index lookups only, in its
 * generic plan): no row when `start` finds no one.
 */
export async function findScannedMember(
  db: Db,
  start: RawBuilder<unknown>,
): Promise<ScannedMember | undefined> {
  const coupons = usableCoupons(expressionBuilder<DB, 'customer'>())
  const { rows } = await executePrepared<ScannedMember>(
    db,
    sql`with recursive start as (${start}),
      ${survivorCtes(sql`select customer_id, via from start`, { carry: ['via'], stopAtErased: true })}
      select customer.id, customer.display_name, customer.tier, customer.points, survivor.via,
        survivor.hop,
        survivor.erased_at is not null as erased, survivor.merged_into_id is not null as merged,
        ${coupons} as coupons
      from survivor join customer on customer.id = survivor.id`,
  )
  return rows[0]
}

export async function findStoreCodeById(db: Db, id: string) {
  const row = await db.selectFrom('store').select('code').where('id', '=', id).executeTakeFirst()
  return row?.code
}

/**
 * The stored answer and what the sale was (its time, its lines) and used (its coupons found by customer:
 * coupons move with it), read only for a receipt sent again.
 */
export async function findPurchaseResult(db: Db, purchaseId: string) {
  return db
    .selectFrom('purchase')
    .select(['id', 'customer_id', 'total', 'points_earned', 'points_used', 'result', 'voided_at'])
    .select('purchased_at')
    .select([
      'line_skus as skus',
      'line_quantities as quantities',
      'line_unit_prices as unitPrices',
    ])
    .select(
      sql<string[]>`array(select c.code from coupon c where c.customer_id = purchase.customer_id
        and c.used_purchase_id = purchase.id)`.as('coupons_used'),
    )
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
