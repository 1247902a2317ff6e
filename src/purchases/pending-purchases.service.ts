import { sql, type Transaction } from 'kysely'
import type { DB } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { applyPurchasesToCustomer } from './purchase.repo.ts'
import { lockPurchaser, type PurchaseEnv } from './purchase.service.ts'

/**
 * Gives a customer the purchases that waited for `identity` (online orders placed before the
 * shop account was linked): points are credited and stats updated. An order waiting for another
 * shop account than the one the customer holds is not theirs by its email. Returns how many.
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
      if (identity.kind !== 'email') return waited
      // An order naming the shop's customer id and an email waits on the email too, unless this
      // customer holds another shop account: it keeps waiting for its own (two shop accounts are
      // never merged, as recordOrder decides when the order arrives).
      const byEmail = eb.and([
        eb('pending_email', '=', identity.value),
        eb.not(
          eb.exists(
            eb
              .selectFrom('identity as held')
              .select('held.id')
              .where('held.customer_id', '=', customer.id)
              .where('held.kind', '=', 'online_customer')
              .where('purchase.pending_identity_kind', '=', 'online_customer')
              .whereRef('held.value', '<>', 'purchase.pending_identity_value'),
          ),
        ),
      ])
      return eb.or([waited, byEmail])
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
