import { type RawBuilder, sql, type Transaction } from 'kysely'
import type { Env } from '../config/env.ts'
import { MAX_MERGE_HOPS, MergeChainTooLong } from '../customers/surviving-customer.repo.ts'
import type { DB, Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { newTimeOrderedId } from '../platform/ids.ts'
import {
  findPurchaseByKey,
  type LockedCustomer,
  lockCustomerById,
  type PurchaseLine,
} from './purchase.repo.ts'
import { type PurchaseFields, purchaseRefusal } from './purchase-refusal.ts'
import { recordPurchaseOnce } from './record-purchase.repo.ts'

export type PurchaseEnv = Pick<Env, 'POINTS_RATE_PERCENT' | 'TIER_THRESHOLDS'>

/** Times recordPurchaseFor runs its statement when its customer changed (or was merged) under it. */
export const STALE_RUNS = 10

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
  lines: PurchaseLine[]
  total: number
  pointsUsed?: number
  couponCodes?: string[]
}

export type RecordedPurchase = {
  purchaseId: string
  created: boolean
  /**
   * The customer the purchase was written to, locked, merges followed (a merge that committed
   * before the lock leads on to its survivor): not always the id the caller asked for. On a
   * replay, the customer `start` found. null: no customer.
   */
  customerId: string | null
}

/**
 * Points for a total, rounded down, in whole numbers: the rate in hundredths of a percent, so
 * that 0.7% of 11,000 is 77 (in floating point, 11000 * 0.7 / 100 is 76.99999999999999). The
 * same as `floor(total * rate / 100)` in SQL numeric, which attachPendingPurchases uses.
 */
export function pointsFor(total: number, env: PurchaseEnv): number {
  const basisPoints = Math.round(env.POINTS_RATE_PERCENT * 100)
  return Math.floor((total * basisPoints) / 10_000)
}

/**
 * Locks the customer a purchase belongs to: a merged customer leads to the survivor,
 * an erased one is GONE. Returns undefined for an unknown id.
 */
export async function lockPurchaser(trx: Transaction<DB>, customerId: string) {
  return followLocked(trx, await lockCustomerById(trx, customerId))
}

/**
 * Checks a customer locked by lockedSurvivorQuery: erased is GONE; a walk cut short (a chain
 * longer than MAX_MERGE_HOPS) is MergeChainTooLong, as every walk of merges; one still merged (a
 * merge committed while we waited for its lock) leads on to the survivor.
 */
export async function followLocked(
  trx: Transaction<DB>,
  locked: LockedCustomer | undefined,
): Promise<LockedCustomer | undefined> {
  let row = locked
  for (let round = 0; round < MAX_MERGE_HOPS; round++) {
    if (!row) return undefined
    if (row.erased_at) throw new AppError('GONE', 'this customer was erased on request')
    if (row.cut) throw new MergeChainTooLong()
    if (!row.merged_into_id) return row
    row = await lockCustomerById(trx, row.merged_into_id)
  }
  throw new MergeChainTooLong()
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
  const recorded = await recordPurchaseFor(trx, env, input, {
    start: input.customerId ? customerStart(input.customerId) : null,
    withResult: false,
  })
  if (recorded.notFound) throw new AppError('NOT_FOUND', 'no customer with this id')
  const { purchaseId, created, customerId } = recorded
  return { purchaseId, created, customerId }
}

/** A `start` for recordPurchaseFor: the customer with this id (merges are followed). */
export function customerStart(customerId: string): RawBuilder<unknown> {
  return sql`select ${customerId}::uuid as customer_id, null::text as via, null::text as coupon`
}

export type RecordedPurchaseFor = RecordedPurchase & {
  /** `start` found no customer: nothing was written (purchaseId is ''). */
  notFound?: boolean
  /** How the customer was found (the `via` of `start`). */
  via?: string | null
  /** The stored answer (withResult), when created. */
  result?: unknown
  /** The post-purchase follow-up written with it (queue it after commit: enqueueFollowUp). */
  followUp?: { id: string; sendAfter: Date }
  /** Written as the customer's first purchase, or it changed their tier (rich-menu segments). */
  segmentInputsChanged?: boolean
}

/**
 * recordPurchase in one statement (recordPurchaseOnce), atomic on its own: `db` may be the pool
 * or a transaction. The customer is the one `start` selects (null: no customer). A replay is
 * looked up only when nothing was written; a refused guard throws and nothing was written.
 */
export async function recordPurchaseFor(
  db: Db,
  env: PurchaseEnv,
  input: PurchaseInput,
  opts: {
    start: RawBuilder<unknown> | null
    withResult: boolean
    /** A store purchase with a customer gets a follow-up delivery this long after now. */
    followUpDelaySeconds?: number
    /** What the caller's request calls the points and coupons a refusal names. */
    fields?: PurchaseFields
  },
): Promise<RecordedPurchaseFor> {
  const pointsUsed = input.pointsUsed ?? 0
  const couponCodes = input.couponCodes ?? []
  // Not reachable from a request (a scan always has a `start`; orders use no points): no field.
  if (!opts.start && (pointsUsed > 0 || couponCodes.length > 0)) {
    throw new AppError('BAD_REQUEST', 'points and coupons can only be used by a known customer')
  }
  const hasCustomer = opts.start !== null
  const unique = [...new Set(couponCodes)]
  const pointsEarned = hasCustomer ? pointsFor(input.total, env) : 0
  const purchaseId = newTimeOrderedId() // time-ordered: appended at the index's right edge
  // A receipt without lines (a total typed on the staff page) has nothing to follow up on.
  const followUp =
    input.channel === 'store' &&
    hasCustomer &&
    input.lines.length > 0 &&
    opts.followUpDelaySeconds !== undefined
      ? { delaySeconds: opts.followUpDelaySeconds }
      : null
  let start = opts.start
  for (let attempt = 0; attempt < STALE_RUNS; attempt++) {
    const out = await recordPurchaseOnce(db, {
      start,
      row: {
        id: purchaseId,
        channel: input.channel,
        source: input.source,
        external_id: input.externalId,
        store_id: input.storeId ?? null,
        register_id: input.registerId ?? null,
        purchased_at: input.purchasedAt,
        total: input.total,
        points_earned: pointsEarned,
        points_used: pointsUsed,
        pending_identity_kind: hasCustomer ? null : (input.pendingIdentity?.kind ?? null),
        pending_identity_value: hasCustomer ? null : (input.pendingIdentity?.value ?? null),
      },
      lines: input.lines,
      // A duplicate makes the count guard fail: nothing is written, then refused below.
      couponCodes: unique.length === couponCodes.length ? unique : [...unique, ''],
      ledger: [
        ...(pointsUsed > 0 ? [{ delta: -pointsUsed, reason: 'redeem' }] : []),
        ...(pointsEarned > 0 ? [{ delta: pointsEarned, reason: 'earn' }] : []),
      ],
      thresholds: env.TIER_THRESHOLDS,
      withResult: opts.withResult,
      followUp,
    })
    const via = out.via
    if (out.purchase_id) {
      const { follow_up_id: id, follow_up_send_after: sendAfter } = out
      return {
        purchaseId: out.purchase_id,
        created: true,
        customerId: out.customer_id,
        via,
        result: out.result,
        segmentInputsChanged: out.segment_inputs_changed === true,
        ...(id && sendAfter ? { followUp: { id, sendAfter } } : {}),
      }
    }
    if (hasCustomer) {
      if (!out.customer_id) {
        return { purchaseId: '', created: false, customerId: null, notFound: true }
      }
      if (out.erased) throw new AppError('GONE', 'this customer was erased on request')
      if (out.cut) throw new MergeChainTooLong()
      if (out.merged_into_id) {
        // Merged while we waited for its lock: go on from there.
        start = sql`select ${out.merged_into_id}::uuid as customer_id, ${via}::text as via,
          ${out.coupon}::text as coupon`
        continue
      }
      if (out.stale) continue // changed after our snapshot: read it again
    }
    // Nothing written: a replay (recorded before, or concurrently), or a refused guard.
    const first = await findPurchaseByKey(db, input)
    if (first) return { purchaseId: first.id, created: false, via, customerId: out.customer_id }
    if (out.ok) throw new Error('purchase conflict without a row')
    throw purchaseRefusal(out, { pointsUsed, couponCodes }, opts.fields)
  }
  throw new CustomerKeptChanging()
}

/**
 * recordPurchaseFor found its customer changed since its statement's snapshot each time it ran
 * (many purchases for one customer at once: a shared house card at every register), and wrote
 * nothing. Sent again once the rush has passed, it is recorded: 503, which a caller may run
 * again first (runAgainIfAborted's `again`).
 */
export class CustomerKeptChanging extends AppError {
  override name = 'CustomerKeptChanging'
  constructor() {
    super(
      'UNAVAILABLE',
      'busy: other purchases or tasks changed this customer each time this purchase was ' +
        'recorded, so it was not; send it again',
    )
  }
}
