import type { Env } from '../config/env.ts'
import { refreshCustomerStats } from '../customers/customer.service.ts'
import { cancelDeliveries } from '../messaging/delivery.service.ts'
import type { Database, Db } from '../platform/db.ts'
import {
  addPointsForPurchase,
  findLedgerDeltas,
  findPointsAndTier,
  findPurchaseOwner,
  lockCustomerPoints,
  lockPurchaseById,
  markPurchaseVoided,
  type PurchaseKey,
  restoreCouponsOf,
} from './void-purchase.repo.ts'

export const VOID_REASON = 'void'

/** Points a void moved back: `used` returned to the customer, `earned` taken back from them. */
export type PointsReversed = {
  earned: number
  used: number
  /** Earned points already spent when the receipt was voided: the balance stops at 0. */
  unrecovered: number
}

export type VoidedPurchase = {
  purchase: {
    id: string
    receiptId: string
    voidedAt: string
    pointsReversed: PointsReversed
    couponsRestored: string[]
  }
  /** The balance and tier after the void (now, on a repeat); null for a purchase without one. */
  customer: { id: string; points: number; tier: string } | null
}

/** What the void did, kept on the purchase (`result.void`) so a repeat answers the same. */
type VoidRecord = Pick<VoidedPurchase['purchase'], 'pointsReversed' | 'couponsRestored'>

/**
 * Voids a purchase in one transaction: voided_at, its points reversed (ledger rows 'void'; the
 * balance never goes below 0), its coupons usable again, the customer's stats recomputed and its
 * follow-up cancelled. Voiding again changes nothing and answers the same. Undefined: no such
 * purchase. The customer is locked before the purchase, in the order scans and merges lock.
 */
export async function voidPurchase(
  deps: { db: Database; env: Pick<Env, 'TIER_THRESHOLDS'> },
  key: PurchaseKey,
): Promise<VoidedPurchase | undefined> {
  return deps.db.transaction().execute(async (trx) => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const seen = await findPurchaseOwner(trx, key)
      if (!seen) return undefined
      const customer = seen.customer_id ? await lockCustomerPoints(trx, seen.customer_id) : null
      const purchase = await lockPurchaseById(trx, seen.id)
      if (purchase.customer_id !== seen.customer_id) continue // moved by a merge meanwhile
      if (purchase.voided_at) {
        return answer(trx, purchase, purchase.voided_at, await storedRecord(trx, purchase))
      }

      const reversed: PointsReversed = { earned: 0, used: 0, unrecovered: 0 }
      if (customer && !customer.erased_at) {
        reversed.used = purchase.points_used
        reversed.earned = Math.min(purchase.points_earned, customer.points + reversed.used)
        reversed.unrecovered = purchase.points_earned - reversed.earned
        await addPointsForPurchase(trx, {
          customerId: customer.id,
          purchaseId: purchase.id,
          reason: VOID_REASON,
          deltas: [reversed.used, -reversed.earned],
        })
      }
      const record: VoidRecord = {
        pointsReversed: reversed,
        couponsRestored: await restoreCouponsOf(trx, purchase.id),
      }
      const voidedAt = await markPurchaseVoided(trx, purchase.id, record)
      if (customer) await refreshCustomerStats(trx, customer.id, deps.env.TIER_THRESHOLDS)
      await cancelDeliveries(trx, [`post-purchase:${purchase.id}`], 'receipt voided')
      return answer(trx, purchase, voidedAt, record)
    }
    throw new Error('the purchase kept moving between customers while voiding it')
  })
}

type LockedPurchase = Awaited<ReturnType<typeof lockPurchaseById>>

async function answer(
  db: Db,
  purchase: LockedPurchase,
  voidedAt: Date,
  record: VoidRecord,
): Promise<VoidedPurchase> {
  return {
    purchase: {
      id: purchase.id,
      receiptId: purchase.external_id,
      voidedAt: voidedAt.toISOString(),
      ...record,
    },
    customer: purchase.customer_id ? await findPointsAndTier(db, purchase.customer_id) : null,
  }
}

/** The record kept by the first void, else (anonymised by an erasure) rebuilt from the ledger. */
async function storedRecord(db: Db, purchase: LockedPurchase): Promise<VoidRecord> {
  const stored = (purchase.result as { void?: VoidRecord } | null)?.void
  if (stored) return stored
  const deltas = await findLedgerDeltas(db, purchase.id, VOID_REASON)
  const earned = -deltas.filter((d) => d < 0).reduce((a, b) => a + b, 0)
  const used = deltas.filter((d) => d > 0).reduce((a, b) => a + b, 0)
  return {
    pointsReversed: { earned, used, unrecovered: Math.max(0, purchase.points_earned - earned) },
    couponsRestored: [],
  }
}
