import { type RawBuilder, sql } from 'kysely'

/**
 * The most merges any walk follows (survivorCtes, and the walks that lock on the way): a merge
 * re-points the customers merged earlier into the one it merges at its survivor
 * (mergeCustomers), so a chain merges wrote is one hop long; a longer one was left by hand or by
 * a bug, and past this many every walk refuses it with MergeChainTooLong.
 */
export const MAX_MERGE_HOPS = 10

/** A chain of merges longer than MAX_MERGE_HOPS: its end is not known, so nothing is done. */
export class MergeChainTooLong extends Error {
  override name = 'MergeChainTooLong'
  constructor() {
    super('customer merge chain is too long')
  }
}

/**
 * Two CTEs for a `with recursive`, to follow merges inside the caller's statement:
 * `merge_chain(id, merged_into_id, erased_at, hop, …carry)`, the customer `start` names (its
 * column `customer_id`, at most one row; the `carry` columns are copied onto every row), then
 * each customer `merged_into_id` leads to, one primary-key lookup a hop, at most MAX_MERGE_HOPS on
 * and, with `stopAtErased`, none on from an erased customer; and `survivor`, its last row. The
 * survivor's merged_into_id is set only when the chain was cut short (the caller checks it:
 * assertChainEnded); an unknown customer_id gives no row. Every walk of merges goes through
 * here, or keeps to MAX_MERGE_HOPS and MergeChainTooLong, so all agree on where one leads.
 */
export function survivorCtes(
  start: RawBuilder<unknown>,
  opts: { carry?: readonly string[]; stopAtErased?: boolean } = {},
): RawBuilder<unknown> {
  // `, "via"` in the column list, `, "s"."via"` and `, "merge_chain"."via"` in the selects.
  const carried = (table?: string) =>
    sql.join(
      (opts.carry ?? []).map((c) => sql`, ${sql.ref(table ? `${table}.${c}` : c)}`),
      sql``,
    )
  const stop = opts.stopAtErased ? sql`and merge_chain.erased_at is null` : sql``
  return sql`merge_chain(id, merged_into_id, erased_at, hop${carried()}) as (
      select c.id, c.merged_into_id, c.erased_at, 0${carried('s')}
      from (${start}) s join customer c on c.id = s.customer_id
      union all
      select c.id, c.merged_into_id, c.erased_at, merge_chain.hop + 1${carried('merge_chain')}
      from merge_chain join customer c on c.id = merge_chain.merged_into_id
      where merge_chain.hop < ${sql.lit(MAX_MERGE_HOPS)} ${stop}
    ),
    survivor as (select * from merge_chain order by hop desc limit 1)`
}

/**
 * For a statement with survivorCtes: whether its walk was cut short at MAX_MERGE_HOPS (the last
 * customer reached, as the statement's snapshot saw it, still merged). A caller that locks the
 * survivor tells this (MergeChainTooLong) from a merge that committed while it waited for the
 * lock (the locked row merged, the walk not cut: follow on from there).
 */
export const survivorCut: RawBuilder<boolean> = sql<boolean>`(select merged_into_id is not null from survivor)`

/**
 * The id of the customer holding `customerId`'s data now (merges followed, erased or not; see
 * survivorCtes), as a scalar subquery for the caller's statement: null for an unknown id.
 */
export function survivorIdOf(customerId: string): RawBuilder<string> {
  const start = sql`select ${customerId}::uuid as customer_id`
  return sql<string>`(with recursive ${survivorCtes(start)} select id from survivor)`
}

/**
 * The customer that `customerId` (a column of the caller's row, e.g. `sql.ref('p.customer_id')`)
 * leads to, as a subquery for a lateral join: one row (id, merged_into_id, erased_at), see
 * survivorCtes; none for a null or unknown id. One index probe a hop, for each row of the caller.
 */
export function survivorRowOf(customerId: RawBuilder<unknown>): RawBuilder<unknown> {
  const start = sql`select ${customerId} as customer_id`
  return sql`(with recursive ${survivorCtes(start)}
    select id, merged_into_id, erased_at from survivor)`
}

/**
 * Throws when a walk stopped on a customer still merged (a chain longer than survivorCtes
 * follows): its data is elsewhere, and taking it for the survivor would put purchases, identities
 * or profile fields on a merged-away row, or answer with its id.
 */
export function assertChainEnded(row: { merged_into_id: string | null } | undefined): void {
  if (row?.merged_into_id) throw new MergeChainTooLong()
}
