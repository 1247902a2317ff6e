import { type Selectable, sql } from 'kysely'
import type { DB, Db } from '../platform/db.ts'
import type { IdentityKind } from './identity-values.ts'
import { assertChainEnded, survivorIdOf } from './surviving-customer.repo.ts'

export type Customer = Selectable<DB['customer']>

/** Locks the customers in id order, so two merges of the same pair cannot deadlock. */
export async function lockCustomers(trx: Db, ids: string[]): Promise<Customer[]> {
  return trx
    .selectFrom('customer')
    .selectAll()
    .where('id', 'in', ids)
    .orderBy('id')
    .forUpdate()
    .execute()
}

export async function findCustomerById(db: Db, id: string): Promise<Customer | undefined> {
  return db.selectFrom('customer').selectAll().where('id', '=', id).executeTakeFirst()
}

/**
 * Follows `merged_into_id` to the customer that holds the data now, erased or not, in one
 * statement (survivorIdOf); undefined for an unknown id. A chain longer than the walk follows
 * is an error (assertChainEnded), never a merged customer given as the survivor.
 */
export async function findSurvivingCustomer(db: Db, id: string): Promise<Customer | undefined> {
  const customer = await db
    .selectFrom('customer')
    .selectAll()
    .where('id', '=', survivorIdOf(id))
    .executeTakeFirst()
  assertChainEnded(customer)
  return customer
}

export async function insertCustomerRow(db: Db): Promise<string> {
  const row = await db
    .insertInto('customer')
    .defaultValues()
    .returning('id')
    .executeTakeFirstOrThrow()
  return row.id
}

export async function findIdentityOwner(db: Db, kind: string, value: string) {
  return db
    .selectFrom('identity')
    .select(['id', 'customer_id'])
    .where('kind', '=', kind)
    .where('value', '=', value)
    .executeTakeFirst()
}

/** Inserts the identity unless (kind, value) exists; returns whether it was inserted. */
export async function insertIdentityIfAbsent(
  db: Db,
  customerId: string,
  kind: string,
  value: string,
): Promise<boolean> {
  const row = await db
    .insertInto('identity')
    .values({ customer_id: customerId, kind, value })
    .onConflict((oc) => oc.columns(['kind', 'value']).doNothing())
    .returning('id')
    .executeTakeFirst()
  return row !== undefined
}

export async function listIdentities(db: Db, customerId: string) {
  return db
    .selectFrom('identity')
    .select(['kind', 'value'])
    .where('customer_id', '=', customerId)
    .orderBy('kind')
    .orderBy('created_at')
    .execute()
}

/** How many identities of `kind` each customer holds (one without any is left out). */
export async function countIdentities(db: Db, customerIds: string[], kind: IdentityKind) {
  const rows = await db
    .selectFrom('identity')
    .select(['customer_id', (eb) => eb.fn.countAll<string>().as('n')])
    .where('customer_id', 'in', customerIds)
    .where('kind', '=', kind)
    .groupBy('customer_id')
    .execute()
  return new Map(rows.map((r) => [r.customer_id, Number(r.n)]))
}

export const OWNED_TABLES = [
  'identity',
  'line_user',
  'purchase',
  'points_ledger',
  'coupon',
  'delivery',
] as const
export type OwnedTable = (typeof OWNED_TABLES)[number]

/** Re-points every row of `table` from one customer to another; returns how many moved. */
export async function moveCustomerRows(
  trx: Db,
  table: OwnedTable,
  fromId: string,
  toId: string,
): Promise<number> {
  const result = await trx
    .updateTable(table)
    .set({ customer_id: toId })
    .where('customer_id', '=', fromId)
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}

export type TierThreshold = { tier: string; minSpend: number }

/** `case when spend >= gold then 'gold' … else 'regular' end`; without thresholds, the tier stays. */
function tierSql(thresholds: TierThreshold[] | undefined) {
  if (!thresholds) return sql`c.tier`
  const whens = [...thresholds]
    .sort((a, b) => b.minSpend - a.minSpend)
    .map((t) => sql`when s.total_12m >= ${t.minSpend} then ${t.tier}::text`)
  if (whens.length === 0) return sql`'regular'`
  return sql`case ${sql.join(whens, sql` `)} else 'regular' end`
}

/**
 * Purchase count, spend, dates (and the tier, given thresholds) from the purchases themselves;
 * voided purchases do not count. The 12-month spend is the last 365 days, as at the register.
 */
export async function recomputeCustomerStats(
  trx: Db,
  customerId: string,
  thresholds?: TierThreshold[],
): Promise<void> {
  await sql`
    update customer c set
      purchase_count = s.n,
      total_spent = s.total,
      spend_12m = s.total_12m,
      tier = ${tierSql(thresholds)},
      first_purchase_at = s.first_at,
      last_purchase_at = s.last_at,
      updated_at = now()
    from (
      select count(*)::int as n,
        coalesce(sum(total), 0)::bigint as total,
        coalesce(sum(total) filter (where purchased_at > now() - interval '365 days'), 0)::bigint
          as total_12m,
        min(purchased_at) as first_at,
        max(purchased_at) as last_at
      from purchase where customer_id = ${customerId} and voided_at is null
    ) s
    where c.id = ${customerId}`.execute(trx)
}
