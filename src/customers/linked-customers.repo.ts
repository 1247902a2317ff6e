import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { findSurvivingCustomer } from './customer.repo.ts'

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
  const edges = await splitEdges(db)
  const found = new Set([customerId])
  const queue = [customerId]
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const other of edges.get(next) ?? []) {
      if (found.has(other)) continue
      found.add(other)
      if (found.size > MAX_LINKED_CUSTOMERS) {
        throw new Error(
          `customer ${customerId}: account links lead to more than ${MAX_LINKED_CUSTOMERS} ` +
            'customers; nothing was changed',
        )
      }
      queue.push(other)
    }
  }
  found.delete(customerId)
  return [...found].sort()
}

/**
 * Every unlink as a pair of the customers its two sides are held by now (merges followed),
 * both ways: customer → the customers it was split from or split off. Unlinks only: a link
 * alone left one customer.
 */
async function splitEdges(db: Db): Promise<Map<string, string[]>> {
  const { rows } = await sql<{ a: string; b: string }>`
    with recursive side(link_id, side, id, hop) as (
      select id, 0, customer_id, 0 from account_link where unlinked_to_customer_id is not null
      union all
      select id, 1, unlinked_to_customer_id, 0 from account_link
      where unlinked_to_customer_id is not null
      union all
      select s.link_id, s.side, c.merged_into_id, s.hop + 1 from side s
      join customer c on c.id = s.id
      where c.merged_into_id is not null and s.hop < 20
    ),
    now_held(link_id, side, id) as (
      select distinct on (link_id, side) link_id, side, id from side
      order by link_id, side, hop desc
    )
    select a.id as a, b.id as b from now_held a
    join now_held b on b.link_id = a.link_id and b.side = 1
    where a.side = 0 and a.id <> b.id`.execute(db)
  const edges = new Map<string, string[]>()
  const add = (from: string, to: string) => edges.set(from, [...(edges.get(from) ?? []), to])
  for (const { a, b } of rows) {
    add(a, b)
    add(b, a)
  }
  return edges
}
