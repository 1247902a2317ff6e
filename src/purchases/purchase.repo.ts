import { type Kysely, type RawBuilder, sql, type Transaction } from 'kysely'
import { survivorCtes, survivorCut } from '../customers/surviving-customer.repo.ts'
import type { DB, Db } from '../platform/db.ts'

export type TierThreshold = { tier: string; minSpend: number }

/** New purchases of one customer, added to their stats and points in one update. */
export type PurchaseTotals = {
  customerId: string
  count: number
  total: number
  pointsDelta: number
  firstAt: Date
  lastAt: Date
}

/**
 * The most points a customer holds: customer.points is an integer. A balance that would pass it
 * (a rate near 100% on totals of billions of yen) is held at it rather than failing the purchase,
 * the attach or the merge that adds to it (an integer out of range: a 500); the purchase and the
 * ledger keep what was earned.
 */
export const MAX_POINTS = 2_147_483_647

/** A balance plus `delta` (either may be a column), added as bigint and held at MAX_POINTS. */
export function pointsPlus(points: RawBuilder<unknown>, delta: RawBuilder<unknown>) {
  return sql<number>`least((${points})::bigint + (${delta})::bigint, ${sql.lit(MAX_POINTS)})::int`
}

export type LockedCustomer = {
  id: string
  points: number
  merged_into_id: string | null
  erased_at: Date | null
  /** The walk to it was cut short (survivorCut): a chain longer than MAX_MERGE_HOPS. */
  cut: boolean
}

/**
 * Follows `merged_into_id` from the customer(s) `start` selects (column `customer_id`, at most
 * one row) in SQL, stopping at an erased one or after MAX_MERGE_HOPS, and locks the last customer
 * of the chain: one round trip. The caller checks `erased_at`, `cut` (the chain is too long) and
 * `merged_into_id` (set, not cut: a merge committed while we waited for the lock).
 */
export function lockedSurvivorQuery(start: RawBuilder<unknown>) {
  return sql<LockedCustomer & { hop: number; via: string | null }>`
    with recursive ${survivorCtes(start, { carry: ['via'], stopAtErased: true })}
    select c.id, c.points, c.merged_into_id, c.erased_at, (select via from survivor) as via,
      (select hop from survivor) as hop, ${survivorCut} as cut
    from customer c where c.id = (select id from survivor)
    for update of c`
}

/** Locks the survivor of `id` (see lockedSurvivorQuery); undefined for an unknown id. */
export async function lockCustomerById(trx: Transaction<DB>, id: string) {
  const { rows } = await lockedSurvivorQuery(
    sql`select ${id}::uuid as customer_id, null::text as via`,
  ).execute(trx)
  return rows[0]
}

/** The columns of a purchase row that the caller decides (its lines go beside it). */
export type PurchaseRow = {
  id: string
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
}

export type PurchaseLine = {
  sku: string
  name?: string | null
  quantity: number
  unitPrice: number
}

/** A purchase's lines as its row keeps them: parallel arrays, line i + 1 at index i. */
export function lineArrays(lines: readonly PurchaseLine[]) {
  return {
    skus: lines.map((l) => l.sku),
    names: lines.map((l) => l.name ?? null),
    quantities: lines.map((l) => l.quantity),
    unitPrices: lines.map((l) => l.unitPrice),
  }
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

export function tierFor(
  spend: RawBuilder<unknown>,
  thresholds: TierThreshold[],
): RawBuilder<string> {
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
  opts: PurchaseTotals & { thresholds: TierThreshold[] },
) {
  const spend = sql`s.spend`
  const { rows } = await sql<{ points: number; tier: string; spend_12m: string }>`
    update customer set
      points = ${pointsPlus(sql`points`, sql`${opts.pointsDelta}`)},
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

/**
 * Locks customers, in id order (as merges do), before the refresh recomputes their spend from
 * purchase rows. The next statement's snapshot then holds every purchase of theirs, and none
 * can commit meanwhile (the register takes the customer's lock before it writes). Without it,
 * a scan that committed while a recompute ran was missing from spend_12m, which later scans
 * only add to.
 */
async function lockForRecompute(trx: Transaction<DB>, customerIds: string[]): Promise<void> {
  await sql`select from customer where id = any(${customerIds}::uuid[])
    order by id for update`.execute(trx)
}

/** Recomputes spend_12m and tier for the given customers from their purchases. */
export async function refreshSpend(
  db: Db,
  customerIds: string[],
  thresholds: TierThreshold[],
): Promise<number> {
  if (customerIds.length === 0) return 0
  if (!db.isTransaction) {
    return (db as Kysely<DB>)
      .transaction()
      .execute((trx) => refreshSpend(trx, customerIds, thresholds))
  }
  const trx = db as Transaction<DB>
  await lockForRecompute(trx, customerIds)
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
  `.execute(trx)
  return Number(result.numAffectedRows ?? 0)
}

/**
 * Sets the tier from the kept 12-month spend for up to `limit` customers after `afterId` (in id
 * order; erased and merged-away rows are left alone). Batches keep each statement's row locks
 * short: the register waits on them. Returns the last id looked at (null: no more) and how many
 * tiers changed.
 */
export async function retierCustomerBatch(
  db: Db,
  thresholds: TierThreshold[],
  afterId: string | null,
  limit: number,
): Promise<{ lastId: string | null; changed: number }> {
  const tier = tierFor(sql`c.spend_12m`, thresholds)
  const { rows } = await sql<{ last_id: string | null; changed: string }>`
    with batch as (
      select id from customer
      where (${afterId}::uuid is null or id > ${afterId}::uuid)
      order by id limit ${limit}
    ),
    changed as (
      update customer c set tier = ${tier}, updated_at = now()
      from batch
      where c.id = batch.id and c.erased_at is null and c.merged_into_id is null
        and c.tier is distinct from ${tier}
      returning 1
    )
    select (select id from batch order by id desc limit 1) as last_id, (select count(*) from changed) as changed
  `.execute(db)
  const row = rows[0]
  return { lastId: row?.last_id ?? null, changed: Number(row?.changed ?? 0) }
}

/**
 * applyPurchasesToCustomer for many customers in one statement: each row adds its purchases
 * to one customer's stats and points (one row per customer), and spend_12m and tier are
 * recomputed from the purchase rows, as applyPurchasesToCustomer does.
 */
export async function applyPurchasesToCustomers(
  trx: Transaction<DB>,
  rows: PurchaseTotals[],
  thresholds: TierThreshold[],
): Promise<number> {
  if (rows.length === 0) return 0
  const ids = rows.map((r) => r.customerId)
  // No lockForRecompute: the caller locked these customers before writing their purchases (the
  // order batch's lockLiveHolders), against the register, merges and erasures.
  const spend = sql`coalesce(s.spend, 0)::bigint`
  const result = await sql`
    with d as (
      select * from unnest(${ids}::uuid[], ${rows.map((r) => r.count)}::int[],
        ${rows.map((r) => r.total)}::bigint[], ${rows.map((r) => r.pointsDelta)}::bigint[],
        ${rows.map((r) => r.firstAt)}::timestamptz[], ${rows.map((r) => r.lastAt)}::timestamptz[])
        as d(id, n, total, points, first_at, last_at)
    ), s as (
      select p.customer_id, sum(p.total)::bigint as spend from purchase p
      where p.customer_id = any(${ids}::uuid[]) and p.voided_at is null
        and p.purchased_at > now() - interval '365 days'
      group by p.customer_id
    )
    update customer c set
      points = ${pointsPlus(sql`c.points`, sql`d.points`)},
      first_purchase_at = least(c.first_purchase_at, d.first_at),
      last_purchase_at = greatest(c.last_purchase_at, d.last_at),
      purchase_count = c.purchase_count + d.n,
      total_spent = c.total_spent + d.total,
      spend_12m = ${spend},
      tier = ${tierFor(spend, thresholds)},
      updated_at = now()
    from d left join s on s.customer_id = d.id
    where c.id = d.id
  `.execute(trx)
  const changed = Number(result.numAffectedRows ?? 0)
  if (changed !== rows.length) throw new Error('customer vanished while recording purchases')
  return changed
}
