import { randomUUID } from 'node:crypto'
import { sql, type Transaction } from 'kysely'
import type { Env } from '../config/env.ts'
import type { DB, Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import {
  applyPurchasesToCustomer,
  findPurchaseByKey,
  insertPurchaseOnce,
  lockCustomerById,
  markCouponsUsed,
  refreshSpend,
} from './purchase.repo.ts'

export type PurchaseEnv = Pick<Env, 'POINTS_RATE_PERCENT' | 'TIER_THRESHOLDS'>

export type PurchaseInput = {
  channel: 'store' | 'online'
  /** Store code or shop name. */
  source: string
  externalId: string
  storeId?: string | null
  registerId?: string | null
  /** null: kept unmatched … */
  customerId: string | null
  /** … until this identity appears (see attachPendingPurchases). */
  pendingIdentity?: { kind: string; value: string } | null
  purchasedAt: Date
  lines: { sku: string; name?: string | null; quantity: number; unitPrice: number }[]
  total: number
  pointsUsed?: number
  couponCodes?: string[]
}

export type RecordedPurchase = { purchaseId: string; created: boolean }

export function pointsFor(total: number, env: PurchaseEnv): number {
  return Math.floor((total * env.POINTS_RATE_PERCENT) / 100)
}

/**
 * Locks the customer a purchase belongs to: a merged customer leads to the survivor,
 * an erased one is GONE. Returns undefined for an unknown id.
 */
export async function lockPurchaser(trx: Transaction<DB>, customerId: string) {
  let id = customerId
  for (let hop = 0; hop < 10; hop++) {
    const row = await lockCustomerById(trx, id)
    if (!row) return undefined
    if (row.erased_at) throw new AppError('GONE', 'this customer was erased on request')
    if (!row.merged_into_id) return row
    id = row.merged_into_id
  }
  throw new Error('customer merge chain is too long')
}

/**
 * Records a purchase once per (channel, source, externalId): lines, points earned and used,
 * coupons used and the customer's stats, all in `trx`. A replay changes nothing and returns
 * the first purchase with created=false.
 */
export async function recordPurchase(
  trx: Transaction<DB>,
  env: PurchaseEnv,
  input: PurchaseInput,
): Promise<RecordedPurchase> {
  const pointsUsed = input.pointsUsed ?? 0
  const couponCodes = input.couponCodes ?? []
  let customer: Awaited<ReturnType<typeof lockPurchaser>>
  if (input.customerId) {
    customer = await lockPurchaser(trx, input.customerId)
    if (!customer) throw new AppError('NOT_FOUND', 'no customer with this id')
  } else if (pointsUsed > 0 || couponCodes.length > 0) {
    throw new AppError('BAD_REQUEST', 'points and coupons can only be used by a known customer')
  }
  const pointsEarned = customer ? pointsFor(input.total, env) : 0
  const purchaseId = randomUUID()
  const inserted = await insertPurchaseOnce(trx, {
    id: purchaseId,
    customer_id: customer?.id ?? null,
    channel: input.channel,
    source: input.source,
    external_id: input.externalId,
    store_id: input.storeId ?? null,
    register_id: input.registerId ?? null,
    purchased_at: input.purchasedAt,
    total: input.total,
    points_earned: pointsEarned,
    points_used: pointsUsed,
    pending_identity_kind: customer ? null : (input.pendingIdentity?.kind ?? null),
    pending_identity_value: customer ? null : (input.pendingIdentity?.value ?? null),
  })
  if (!inserted) {
    // Recorded before (or by a concurrent request we waited for): a replay changes nothing.
    const first = await findPurchaseByKey(trx, input)
    if (!first) throw new Error('purchase conflict without a row')
    return { purchaseId: first.id, created: false }
  }
  // Checked after the insert so that a replay is never refused; an error rolls it back.
  if (customer && customer.points < pointsUsed) {
    throw new AppError(
      'CONFLICT',
      `not enough points: the balance is ${customer.points}, the receipt uses ${pointsUsed}`,
    )
  }

  if (input.lines.length > 0) {
    await trx
      .insertInto('purchase_line')
      .values(
        input.lines.map((line, i) => ({
          purchase_id: purchaseId,
          line_no: i + 1,
          sku: line.sku,
          name: line.name ?? null,
          quantity: line.quantity,
          unit_price: line.unitPrice,
        })),
      )
      .execute()
  }
  if (!customer) return { purchaseId, created: true }

  if (couponCodes.length > 0) await useCoupons(trx, couponCodes, customer.id, purchaseId, input)
  const ledger = [
    ...(pointsUsed > 0 ? [{ delta: -pointsUsed, reason: 'redeem' }] : []),
    ...(pointsEarned > 0 ? [{ delta: pointsEarned, reason: 'earn' }] : []),
  ]
  if (ledger.length > 0) {
    await trx
      .insertInto('points_ledger')
      .values(ledger.map((l) => ({ ...l, customer_id: customer.id, purchase_id: purchaseId })))
      .execute()
  }
  await applyPurchasesToCustomer(trx, {
    customerId: customer.id,
    count: 1,
    total: input.total,
    pointsDelta: pointsEarned - pointsUsed,
    firstAt: input.purchasedAt,
    lastAt: input.purchasedAt,
    thresholds: env.TIER_THRESHOLDS,
  })
  return { purchaseId, created: true }
}

/** Single use: each code once, this customer's own, not expired at the purchase time. */
async function useCoupons(
  trx: Transaction<DB>,
  codes: string[],
  customerId: string,
  purchaseId: string,
  input: PurchaseInput,
) {
  const unique = [...new Set(codes)]
  if (unique.length !== codes.length) {
    throw new AppError('CONFLICT', 'a coupon is listed twice; each coupon can be used once')
  }
  const used = await markCouponsUsed(trx, {
    codes: unique,
    customerId,
    purchaseId,
    at: input.purchasedAt,
  })
  if (used.length !== unique.length) {
    const ok = new Set(used.map((c) => c.code))
    const refused = unique.filter((code) => !ok.has(code))
    throw new AppError(
      'CONFLICT',
      `coupon ${refused.join(', ')} cannot be used: already used, expired, or not this customer's`,
      { details: { coupons: refused } },
    )
  }
}

/**
 * Gives a customer the purchases that waited for `identity` (online orders placed before the
 * shop account was linked): points are credited and stats updated. Returns how many.
 */
export async function attachPendingPurchases(
  trx: Transaction<DB>,
  env: PurchaseEnv,
  customerId: string,
  identity: { kind: string; value: string },
): Promise<number> {
  const customer = await lockPurchaser(trx, customerId)
  if (!customer) throw new AppError('NOT_FOUND', 'no customer with this id')
  const rate = env.POINTS_RATE_PERCENT
  const attached = await trx
    .updateTable('purchase')
    .set({
      customer_id: customer.id,
      pending_identity_kind: null,
      pending_identity_value: null,
      points_earned: sql<number>`floor(total * ${rate}::numeric / 100)::int`,
    })
    .where('customer_id', 'is', null)
    .where('pending_identity_kind', '=', identity.kind)
    .where('pending_identity_value', '=', identity.value)
    .returning(['id', 'total', 'points_earned', 'purchased_at'])
    .execute()
  if (attached.length === 0) return 0

  const earning = attached.filter((p) => p.points_earned > 0)
  if (earning.length > 0) {
    await trx
      .insertInto('points_ledger')
      .values(
        earning.map((p) => ({
          customer_id: customer.id,
          delta: p.points_earned,
          reason: 'earn',
          purchase_id: p.id,
        })),
      )
      .execute()
  }
  const times = attached.map((p) => p.purchased_at.getTime())
  await applyPurchasesToCustomer(trx, {
    customerId: customer.id,
    count: attached.length,
    total: attached.reduce((sum, p) => sum + p.total, 0),
    pointsDelta: earning.reduce((sum, p) => sum + p.points_earned, 0),
    firstAt: new Date(Math.min(...times)),
    lastAt: new Date(Math.max(...times)),
    thresholds: env.TIER_THRESHOLDS,
  })
  return attached.length
}

/**
 * Keeps spend_12m and tier right as time passes: a purchase leaves the 365-day window without
 * any write to the customer. Recomputes the customers who have a purchase that left the window
 * between `since` and now (run it daily from the sweeper or `kizuna`, with `since` = last run).
 * Over large tables this wants an index on purchase(purchased_at) (not there yet).
 */
export async function refreshStaleSpend(
  db: Db,
  env: Pick<Env, 'TIER_THRESHOLDS'>,
  opts: { since: Date; batchSize?: number },
): Promise<number> {
  const rows = await db
    .selectFrom('purchase')
    .select('customer_id')
    .distinct()
    .where('customer_id', 'is not', null)
    .where('purchased_at', '<=', sql<Date>`now() - interval '365 days'`)
    .where('purchased_at', '>', sql<Date>`${opts.since}::timestamptz - interval '365 days'`)
    .execute()
  const ids = rows.flatMap((r) => (r.customer_id ? [r.customer_id] : []))
  const size = opts.batchSize ?? 1000
  let changed = 0
  for (let i = 0; i < ids.length; i += size) {
    changed += await refreshSpend(db, ids.slice(i, i + size), env.TIER_THRESHOLDS)
  }
  return changed
}
