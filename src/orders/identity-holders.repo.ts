import { sql, type Transaction } from 'kysely'
import type { DB } from '../platform/db.ts'
import { batchKey as key } from './recorded-order.repo.ts'

/** The holder of an identity: its live customer after merges, or null when that one is erased. */
export type Holder = { ownerId: string; liveId: string | null }

/**
 * Who holds each (kind, value), following `merged_into_id` (at most 20 hops, as
 * findSurvivingCustomer does). One statement for the whole batch; the pairs go as one JSON
 * parameter (much cheaper to build than pg's array literals).
 */
export async function findIdentityHolders(
  trx: Transaction<DB>,
  identities: { kind: string; value: string }[],
): Promise<Map<string, Holder>> {
  const holders = new Map<string, Holder>()
  if (identities.length === 0) return holders
  const { rows } = await sql<{ kind: string; value: string; owner_id: string; live_id: string }>`
    with recursive v(kind, value) as (
      select distinct kind, value
      from json_to_recordset(${JSON.stringify(identities)}::json) as i(kind text, value text)
    ), chain(kind, value, owner_id, id, merged_into_id, erased_at, hops) as (
      select v.kind, v.value, i.customer_id, c.id, c.merged_into_id, c.erased_at, 0
      from v join identity i on i.kind = v.kind and i.value = v.value
      join customer c on c.id = i.customer_id
      union all
      select chain.kind, chain.value, chain.owner_id, c.id, c.merged_into_id, c.erased_at,
        chain.hops + 1
      from chain join customer c on c.id = chain.merged_into_id
      where chain.hops < 20
    )
    select kind, value, owner_id, case when erased_at is null then id end as live_id
    from chain where merged_into_id is null or hops = 20
  `.execute(trx)
  for (const r of rows)
    holders.set(key(r.kind, r.value), { ownerId: r.owner_id, liveId: r.live_id })
  return holders
}
