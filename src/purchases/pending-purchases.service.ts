import type { Transaction } from 'kysely'
import type { DB } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { attachWaitingRows } from './pending-purchase.repo.ts'
import { applyPurchasesToCustomer } from './purchase.repo.ts'
import { lockPurchaser, type PurchaseEnv } from './purchase.service.ts'

/**
 * Gives a customer the purchases that waited for `identity` (online orders placed before the
 * shop account or email was linked): points are credited and stats updated, in a statement
 * whatever their number. An order naming a shop account waits for it, even when it names an
 * email too: the email's holder gets it only by getting its shop account (attachWaitingPurchases).
 * Returns how many.
 */
export async function attachPendingPurchases(
  trx: Transaction<DB>,
  env: PurchaseEnv,
  customerId: string,
  identity: { kind: string; value: string },
): Promise<number> {
  const customer = await lockPurchaser(trx, customerId)
  if (!customer) throw new AppError('NOT_FOUND', 'no customer with this id')
  const totals = await attachWaitingRows(trx, {
    customerId: customer.id,
    ...identity,
    ratePercent: env.POINTS_RATE_PERCENT,
  })
  if (!totals) return 0
  await applyPurchasesToCustomer(trx, {
    ...totals,
    customerId: customer.id,
    thresholds: env.TIER_THRESHOLDS,
  })
  return totals.count
}
