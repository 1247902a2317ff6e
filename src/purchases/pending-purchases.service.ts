import { sql, type Transaction } from 'kysely'
import type { DB } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { applyPurchasesToCustomer } from './purchase.repo.ts'
import { lockPurchaser, type PurchaseEnv } from './purchase.service.ts'

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
      pending_email: null,
      points_earned: sql<number>`floor(total * ${rate}::numeric / 100)::int`,
    })
    .where('customer_id', 'is', null)
    .where((eb) => {
      const waited = eb.and([
        eb('pending_identity_kind', '=', identity.kind),
        eb('pending_identity_value', '=', identity.value),
      ])
      // An order naming the shop's customer id and an email waits on the email too.
      return identity.kind === 'email'
        ? eb.or([waited, eb('pending_email', '=', identity.value)])
        : waited
    })
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
