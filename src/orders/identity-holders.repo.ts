import { sql, type Transaction } from 'kysely'
import { assertChainEnded, survivorRowOf } from '../customers/surviving-customer.repo.ts'
import type { DB } from '../platform/db.ts'
import { batchKey as key } from './recorded-order.repo.ts'

/** The holder of an identity: its live customer after merges, or null when that one is erased. */
export type Holder = { ownerId: string; liveId: string | null }

/**
 * Who holds each (kind, value), following `merged_into_id` (survivorRowOf, as every walk of
 * merges; a chain longer than it follows throws). One statement for the whole batch, one index
 * probe a hop per identity; the pairs go as one JSON parameter (much cheaper to build than pg's
 * array literals).
 */
export async function findIdentityHolders(
  trx: Transaction<DB>,
  identities: { kind: string; value: string }[],
): Promise<Map<string, Holder>> {
  const holders = new Map<string, Holder>()
  if (identities.length === 0) return holders
  const { rows } = await sql<{
    kind: string
    value: string
    owner_id: string
    live_id: string | null
    merged_into_id: string | null
  }>`
    select v.kind, v.value, i.customer_id as owner_id,
      case when o.erased_at is null then o.id end as live_id, o.merged_into_id
    from (select distinct kind, value
      from json_to_recordset(${JSON.stringify(identities)}::json) as v(kind text, value text)) v
    join identity i on i.kind = v.kind and i.value = v.value
    cross join lateral ${survivorRowOf(sql.ref('i.customer_id'))} o
  `.execute(trx)
  for (const r of rows) {
    assertChainEnded(r)
    holders.set(key(r.kind, r.value), { ownerId: r.owner_id, liveId: r.live_id })
  }
  return holders
}
