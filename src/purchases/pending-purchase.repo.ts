import { sql, type Transaction } from 'kysely'
import type { DB, Db } from '../platform/db.ts'
import type { PurchaseTotals } from './purchase.repo.ts'

/**
 * Gives the customer, in one statement, every purchase waiting for (kind, value): its points
 * earned (`ratePercent` of its total, rounded down), a ledger row each, no longer waiting. No
 * row goes through the app: parameters and memory stay the same for 10 orders or 100,000.
 * Returns what they add to the customer's stats (undefined: none waited).
 */
export async function attachWaitingRows(
  trx: Transaction<DB>,
  opts: { customerId: string; kind: string; value: string; ratePercent: number },
): Promise<Omit<PurchaseTotals, 'customerId'> | undefined> {
  const { rows } = await sql<{
    n: string
    total: string | null
    points: string | null
    first_at: Date | null
    last_at: Date | null
  }>`
    with attached as (
      update purchase set customer_id = ${opts.customerId}, pending_identity_kind = null,
        pending_identity_value = null, pending_email = null,
        points_earned = floor(total * ${opts.ratePercent}::numeric / 100)::int
      where customer_id is null and pending_identity_value = ${opts.value}
        and pending_identity_kind = ${opts.kind}
      returning id, total, points_earned, purchased_at
    ), earned as (
      insert into points_ledger (customer_id, delta, reason, purchase_id)
      select ${opts.customerId}::uuid, points_earned, 'earn', id from attached
      where points_earned > 0
    )
    select count(*) as n, sum(total) as total, sum(points_earned) as points,
      min(purchased_at) as first_at, max(purchased_at) as last_at
    from attached`.execute(trx)
  const row = rows[0]
  if (!row?.first_at || !row.last_at) return undefined
  return {
    count: Number(row.n),
    total: Number(row.total),
    pointsDelta: Number(row.points),
    firstAt: row.first_at,
    lastAt: row.last_at,
  }
}

/**
 * The shop account (online customer id) named by the oldest order waiting on `email` (by time
 * ordered, then id), leaving out those another customer than `holderId` holds.
 */
export async function findShopAccountWaitingOn(
  db: Db,
  email: string,
  holderId: string,
): Promise<string | undefined> {
  const { rows } = await sql<{ shop_id: string }>`
    select p.pending_identity_value as shop_id from purchase p
    where p.customer_id is null and p.pending_email = ${email}
      and p.pending_identity_kind = 'online_customer'
      and not exists (select from identity i where i.kind = 'online_customer'
        and i.value = p.pending_identity_value and i.customer_id <> ${holderId})
    order by p.purchased_at, p.id
    limit 1`.execute(db)
  return rows[0]?.shop_id
}
