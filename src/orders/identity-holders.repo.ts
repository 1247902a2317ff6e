import { sql, type Transaction } from 'kysely'
import { assertChainEnded, survivorRowOf } from '../customers/surviving-customer.repo.ts'
import type { DB } from '../platform/db.ts'
import { batchKey as key } from './recorded-order.repo.ts'

/**
 * The holder of an identity: its live customer after merges, or null when that one is erased;
 * for an email, the shop accounts (online customer ids) that customer holds.
 */
export type Holder = { ownerId: string; liveId: string | null; shops?: string[] }

/**
 * Who holds each (kind, value) (an email's with their shop accounts), following `merged_into_id` (survivorRowOf, as every walk of
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
    shops: string[] | null
  }>`
    select v.kind, v.value, i.customer_id as owner_id,
      case when o.erased_at is null then o.id end as live_id, o.merged_into_id,
      case when v.kind = 'email' then array(select s.value from identity s
        where s.customer_id = o.id and s.kind = 'online_customer') end as shops
    from (select distinct kind, value
      from json_to_recordset(${JSON.stringify(identities)}::json) as v(kind text, value text)) v
    join identity i on i.kind = v.kind and i.value = v.value
    cross join lateral ${survivorRowOf(sql.ref('i.customer_id'))} o
  `.execute(trx)
  for (const r of rows) {
    assertChainEnded(r)
    const holder: Holder = { ownerId: r.owner_id, liveId: r.live_id }
    if (r.shops) holder.shops = r.shops
    holders.set(key(r.kind, r.value), holder)
  }
  return holders
}
