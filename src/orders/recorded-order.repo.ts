import { sql } from 'kysely'
import { assertChainEnded, survivorRowOf } from '../customers/surviving-customer.repo.ts'
import type { Db } from '../platform/db.ts'
import type { RecordedOrder } from './order-replay.ts'

/** A map key of two strings (an identity's kind and value, an order's source and id). */
export const batchKey = (a: string, b: string) => `${a}\u0000${b}`

/**
 * The orders recorded under these (source, orderId), by batchKey, as an order sent again is
 * checked against them (changedField): each with the customer holding it now, merges followed
 * (survivorRowOf, as every walk of merges; a chain longer than it follows throws), and whether
 * that customer is erased. One index probe per order (a lateral subquery per key: a join could
 * turn into a scan of the whole table under statistics that lag behind an import), in one
 * statement for the lot.
 */
export async function findRecordedOrders(
  db: Db,
  keys: { source: string; orderId: string }[],
): Promise<Map<string, RecordedOrder>> {
  const recorded = new Map<string, RecordedOrder>()
  if (keys.length === 0) return recorded
  const pairs = keys.map((k) => ({ s: k.source, x: k.orderId }))
  const { rows } = await sql<
    RecordedOrder & { s: string; x: string; merged_into_id: string | null }
  >`
    select k.s, k.x, p.id, p.total, p.purchased_at, p.pending_identity_kind,
      p.pending_identity_value, p.pending_email, case when o.erased_at is null then o.id end as customer_id,
      o.erased_at is not null as erased, o.merged_into_id, p.line_skus as skus,
      p.line_quantities as quantities, p.line_unit_prices as "unitPrices"
    from json_to_recordset(${JSON.stringify(pairs)}::json) as k(s text, x text)
    join lateral (select p.id, p.customer_id, p.total, p.purchased_at, p.pending_identity_kind,
        p.pending_identity_value, p.pending_email, p.line_skus, p.line_quantities,
        p.line_unit_prices from purchase p
      where p.channel = 'online' and p.source = k.s and p.external_id = k.x) p on true
    left join lateral ${survivorRowOf(sql.ref('p.customer_id'))} o on true`.execute(db)
  for (const { s, x, merged_into_id, ...r } of rows) {
    assertChainEnded({ merged_into_id })
    recorded.set(batchKey(s, x), r)
  }
  return recorded
}
