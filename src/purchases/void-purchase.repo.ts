import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { pointsPlus } from './purchase.repo.ts'

export type PurchaseKey = { channel: string; source: string; externalId: string }

/** The purchase with this key and its customer, without a lock (to lock the customer first). */
export async function findPurchaseOwner(db: Db, key: PurchaseKey) {
  return db
    .selectFrom('purchase')
    .select(['id', 'customer_id'])
    .where('channel', '=', key.channel)
    .where('source', '=', key.source)
    .where('external_id', '=', key.externalId)
    .executeTakeFirst()
}

export async function lockPurchaseById(db: Db, id: string) {
  return db
    .selectFrom('purchase')
    .select([
      'id',
      'customer_id',
      'external_id',
      'points_earned',
      'points_used',
      'voided_at',
      'result',
    ])
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirstOrThrow()
}

/** The customer row as it is (no merge is followed: purchases move with merges). */
export async function lockCustomerPoints(db: Db, id: string) {
  return db
    .selectFrom('customer')
    .select(['id', 'points', 'erased_at'])
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirstOrThrow()
}

/** Ledger rows for a purchase and the customer's balance moved by their sum. */
export async function addPointsForPurchase(
  db: Db,
  opts: { customerId: string; purchaseId: string; reason: string; deltas: number[] },
): Promise<void> {
  const deltas = opts.deltas.filter((d) => d !== 0)
  if (deltas.length === 0) return
  await db
    .insertInto('points_ledger')
    .values(
      deltas.map((delta) => ({
        customer_id: opts.customerId,
        purchase_id: opts.purchaseId,
        delta,
        reason: opts.reason,
      })),
    )
    .execute()
  const sum = deltas.reduce((a, b) => a + b, 0)
  await db
    .updateTable('customer')
    .set({ points: pointsPlus(sql`points`, sql`${sum}::int`), updated_at: sql`now()` })
    .where('id', '=', opts.customerId)
    .execute()
}

export async function findLedgerDeltas(db: Db, purchaseId: string, reason: string) {
  const rows = await db
    .selectFrom('points_ledger')
    .select('delta')
    .where('purchase_id', '=', purchaseId)
    .where('reason', '=', reason)
    .execute()
  return rows.map((r) => r.delta)
}

/** The coupons this purchase used become unused again; returns their codes. */
export async function restoreCouponsOf(db: Db, purchaseId: string): Promise<string[]> {
  const rows = await db
    .updateTable('coupon')
    .set({ used_at: null, used_purchase_id: null })
    .where('used_purchase_id', '=', purchaseId)
    .returning('code')
    .execute()
  return rows.map((r) => r.code).sort()
}

/** Sets voided_at and keeps what the void did next to the register's answer (key `void`). */
export async function markPurchaseVoided(db: Db, id: string, what: unknown): Promise<Date> {
  const row = await db
    .updateTable('purchase')
    .set({
      voided_at: sql`now()`,
      result: sql`coalesce(result, '{}'::jsonb) || jsonb_build_object('void', ${JSON.stringify(what)}::jsonb)`,
    })
    .where('id', '=', id)
    .where('voided_at', 'is', null)
    .returning('voided_at')
    .executeTakeFirstOrThrow()
  if (!row.voided_at) throw new Error('voided_at was not set')
  return row.voided_at
}

export async function findPointsAndTier(db: Db, customerId: string) {
  return db
    .selectFrom('customer')
    .select(['id', 'points', 'tier'])
    .where('id', '=', customerId)
    .executeTakeFirstOrThrow()
}
