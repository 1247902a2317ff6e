import { type RawBuilder, sql, type Transaction } from 'kysely'
import type { DB, Db } from '../platform/db.ts'

export type TierThreshold = { tier: string; minSpend: number }

/** Locks one customer row; the caller follows `merged_into_id` and checks `erased_at`. */
export async function lockCustomerById(trx: Transaction<DB>, id: string) {
  return trx
    .selectFrom('customer')
    .select(['id', 'points', 'merged_into_id', 'erased_at'])
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst()
}

export async function insertPurchaseOnce(
  trx: Transaction<DB>,
  row: {
    id: string
    customer_id: string | null
    channel: string
    source: string
    external_id: string
    store_id: string | null
    register_id: string | null
    purchased_at: Date
    total: number
    points_earned: number
    points_used: number
    pending_identity_kind: string | null
    pending_identity_value: string | null
  },
) {
  return trx
    .insertInto('purchase')
    .values(row)
    .onConflict((oc) => oc.columns(['channel', 'source', 'external_id']).doNothing())
    .returning('id')
    .executeTakeFirst()
}

export async function findPurchaseByKey(
  db: Db,
  key: { channel: string; source: string; externalId: string },
) {
  return db
    .selectFrom('purchase')
    .selectAll()
    .where('channel', '=', key.channel)
    .where('source', '=', key.source)
    .where('external_id', '=', key.externalId)
    .executeTakeFirst()
}

/** Marks the coupons used, only those of this customer, unused and valid at `at`. */
export async function markCouponsUsed(
  trx: Transaction<DB>,
  opts: { codes: string[]; customerId: string; purchaseId: string; at: Date },
) {
  return trx
    .updateTable('coupon')
    .set({ used_at: sql`now()`, used_purchase_id: opts.purchaseId })
    .where('code', 'in', opts.codes)
    .where('customer_id', '=', opts.customerId)
    .where('used_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', opts.at)]))
    .returning(['code', 'discount_yen'])
    .execute()
}

/** `case when spend >= gold then 'gold' … else 'regular' end` for the configured thresholds. */
function tierFor(spend: RawBuilder<unknown>, thresholds: TierThreshold[]): RawBuilder<string> {
  const highestFirst = [...thresholds].sort((a, b) => b.minSpend - a.minSpend)
  if (highestFirst.length === 0) return sql<string>`'regular'`
  const whens = highestFirst.map((t) => sql`when ${spend} >= ${t.minSpend} then ${t.tier}::text`)
  return sql<string>`case ${sql.join(whens, sql` `)} else 'regular' end`
}

/** The customer's purchases in the 365 days before now (the transaction's time). */
function spend12mOf(customerId: string): RawBuilder<unknown> {
  return sql`(select coalesce(sum(p.total), 0)::bigint as spend from purchase p
    where p.customer_id = ${customerId} and p.voided_at is null
      and p.purchased_at > now() - interval '365 days')`
}

/**
 * Adds purchases to a customer's stats and points, recomputing the 12-month spend from the
 * purchase rows (index purchase_customer_id_purchased_at_idx) and the tier from it.
 */
export async function applyPurchasesToCustomer(
  trx: Transaction<DB>,
  opts: {
    customerId: string
    count: number
    total: number
    pointsDelta: number
    firstAt: Date
    lastAt: Date
    thresholds: TierThreshold[]
  },
) {
  const spend = sql`s.spend`
  const { rows } = await sql<{ points: number; tier: string; spend_12m: string }>`
    update customer set
      points = points + ${opts.pointsDelta},
      first_purchase_at = least(first_purchase_at, ${opts.firstAt}::timestamptz),
      last_purchase_at = greatest(last_purchase_at, ${opts.lastAt}::timestamptz),
      purchase_count = purchase_count + ${opts.count},
      total_spent = total_spent + ${opts.total},
      (spend_12m, tier) = (select s.spend, ${tierFor(spend, opts.thresholds)}
        from ${spend12mOf(opts.customerId)} s),
      updated_at = now()
    where id = ${opts.customerId}
    returning points, tier, spend_12m`.execute(trx)
  const row = rows[0]
  if (!row) throw new Error('customer vanished while recording a purchase')
  return row
}

/** Recomputes spend_12m and tier for the given customers from their purchases. */
export async function refreshSpend(db: Db, customerIds: string[], thresholds: TierThreshold[]) {
  if (customerIds.length === 0) return 0
  const spend = sql`coalesce(s.spend, 0)`
  const result = await sql`
    with s as (
      select p.customer_id, sum(p.total)::bigint as spend from purchase p
      where p.customer_id = any(${customerIds}::uuid[]) and p.voided_at is null
        and p.purchased_at > now() - interval '365 days'
      group by p.customer_id
    )
    update customer c set spend_12m = ${spend}, tier = ${tierFor(spend, thresholds)},
      updated_at = now()
    from (select unnest(${customerIds}::uuid[]) as id) ids
    left join s on s.customer_id = ids.id
    where c.id = ids.id and (c.spend_12m <> ${spend} or c.tier <> ${tierFor(spend, thresholds)})
  `.execute(db)
  return Number(result.numAffectedRows ?? 0)
}
