import { sql, type Transaction } from 'kysely'
import type { DB, Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { findShopAccountWaitingOn } from './pending-purchase.repo.ts'
import { applyPurchasesToCustomer } from './purchase.repo.ts'
import { lockPurchaser, type PurchaseEnv } from './purchase.service.ts'

/**
 * Gives a customer the purchases that waited for `identity` (online orders placed before the
 * shop account or email was linked): points are credited and stats updated. An order naming a
 * shop account waits for it, even when it names an email too: the email's holder gets it only by
 * getting its shop account (attachWaitingPurchases). Returns how many.
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
      pending_email: null,
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
 * The shop account that orders waiting on `email` give its holder, as recordOrder would have
 * given it had they held the email when the orders came: that of the oldest one. A shop
 * account another customer holds is theirs, never the email holder's (an order names its
 * shop account first), so it is left out.
 */
export function findShopAccountWaitingOnEmail(
  db: Db,
  email: string,
  holderId: string,
): Promise<string | undefined> {
  return findShopAccountWaitingOn(db, email, holderId)
}
