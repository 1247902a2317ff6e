import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { findSurvivingCustomer } from './customer.repo.ts'
import { MAX_MERGE_HOPS, MergeChainTooLong, survivorRowOf } from './surviving-customer.repo.ts'

/**
 * What an erasure does with the customers an account link joined to the one asked for and an
 * unlink split off again (findLinkedCustomers): an unlink is often how a wrong link is
 * corrected (a family member who knew the shop password), so they may be someone else.
 * `refuse`: nothing is erased while there are any (the operator chooses); `erase`: they are
 * erased too; `only`: the one asked for alone.
 */
export type LinkedChoice = 'refuse' | 'erase' | 'only'

/**
 * The customers an erasure of `customerId` erases: the one it leads to (merges followed),
 * then, as `linked` says, the others account links joined to it (findLinkedCustomers). Read
 * without locks; undefined for an unknown id. Throws a CONFLICT naming them for `refuse`.
 */
export async function findCustomersToErase(
  db: Db,
  customerId: string,
  linked: LinkedChoice,
): Promise<string[] | undefined> {
  const survivor = await findSurvivingCustomer(db, customerId)
  if (!survivor) return undefined
  if (linked === 'only') return [survivor.id]
  const others = await findLinkedCustomers(db, survivor.id)
  if (linked === 'refuse' && others.length > 0) {
    throw new AppError(
      'CONFLICT',
      `customer ${customerId} has linked customers: ${others.join(', ')} (account link, later ` +
        'unlinked: possibly the same person, or a wrong link corrected by the unlink); nothing ' +
        'was changed. Run again with --with-linked to erase them all, or with --only to erase ' +
        'just this one',
      { details: { linked: others } },
    )
  }
  return [survivor.id, ...others]
}

/** The most customers an erasure spans through account links, the one asked for included. */
export const MAX_LINKED_CUSTOMERS = 50

/**
 * The other customers an account link proved to be the same person as `customerId` (a
 * survivor of merges), sorted. A link makes the LINE account's customer and the online
 * account's one customer; an unlink then splits them again, the online side staying and the
 * LINE account going to a new customer (`account_link.unlinked_to_customer_id`). Both sides of
 * every such split are followed, transitively (linked, unlinked, linked again, unlinked…),
 * each to the customer holding it now (merges followed). Throws when they and `customerId` are
 * more than MAX_LINKED_CUSTOMERS: the caller acts on all of them or on none.
 */
export async function findLinkedCustomers(db: Db, customerId: string): Promise<string[]> {
  const found = new Set([customerId])
  // Breadth first, a query per step: each reads the unlinks of the step's customers only.
  let step = [customerId]
  while (step.length > 0) {
    const next: string[] = []
    for (const other of await splitFrom(db, step)) {
      if (found.has(other)) continue
      found.add(other)
      if (found.size > MAX_LINKED_CUSTOMERS) {
        throw new Error(
          `customer ${customerId}: account links lead to more than ${MAX_LINKED_CUSTOMERS} ` +
            'customers; nothing was changed',
        )
      }
      next.push(other)
    }
    step = next
  }
  found.delete(customerId)
  return [...found].sort()
}

/**
 * The customers the unlinks of `customerIds` (survivors of merges) split them from or off, each
 * as held now (merges followed: survivorRowOf, as every walk of merges). An unlink's side may be
 * a customer merged into one of them since: those are found through the merge index, the other
 * way, as far as MAX_MERGE_HOPS too, and the unlinks of all through the account_link indexes on
 * either side, unlinked rows only. A chain longer than that either way is MergeChainTooLong:
 * never a merged customer named, nor an unlink missed. Each step is a lookup per row (LATERAL):
 * with every unlinked account link of the shop read instead, an erasure took 0.9 s per call at
 * 100,000 of them (EXPLAIN ANALYZE), under 1 ms this way.
 */
async function splitFrom(db: Db, customerIds: string[]): Promise<string[]> {
  const { rows } = await sql<{ root: string | null; id: string | null; cut: boolean }>`
    with recursive members(root, id, hop) as (
      select c, c, 0 from unnest(${customerIds}::uuid[]) c
      union all
      select m.root, c.id, m.hop + 1 from members m
      join customer c on c.merged_into_id = m.id
      where m.hop < ${sql.lit(MAX_MERGE_HOPS)}
    )
    select m.root, o.id, o.merged_into_id is not null as cut from members m
    cross join lateral (
      select unlinked_to_customer_id as other from account_link
      where customer_id = m.id and unlinked_to_customer_id is not null
      union all
      select customer_id from account_link where unlinked_to_customer_id = m.id
    ) al
    cross join lateral ${survivorRowOf(sql.ref('al.other'))} o
    union all
    select null, null, true where exists (
      select from members m join customer c on c.merged_into_id = m.id
      where m.hop = ${sql.lit(MAX_MERGE_HOPS)}
    )`.execute(db)
  if (rows.some((r) => r.cut)) throw new MergeChainTooLong()
  return rows.flatMap((r) => (r.id && r.root !== r.id ? [r.id] : []))
}
