import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import type { Customer } from './customer.repo.ts'
import type { IdentityKind } from './identity-values.ts'
import { survivorCtes } from './surviving-customer.repo.ts'

/**
 * An identity is held by a customer the caller had not checked (attachIdentity's
 * `checkedHolders`), or kept moving while its holders were locked (lockIdentityHolders): another
 * transaction gave it to them meanwhile. Nothing was merged; the caller checks again from the
 * start.
 */
export class HolderChanged extends Error {
  override name = 'HolderChanged'
  readonly kind: IdentityKind
  constructor(kind: IdentityKind) {
    super(`this ${kind} was given to another customer meanwhile`)
    this.kind = kind
  }
}

/** Share-locks the customer row: a merge or erasure of it waits for the caller's commit. */
export async function lockCustomerForShare(trx: Db, id: string): Promise<Customer | undefined> {
  return trx.selectFrom('customer').selectAll().where('id', '=', id).forShare().executeTakeFirst()
}

/**
 * Locks, in id order and in one statement, every customer an attach of (kind, value) to
 * `customerId` may merge: the one `customerId` leads to (merges followed) and the identity's
 * current holder. Two attaches going opposite ways (A given B's card while B is given A's)
 * then queue on the same first row instead of each holding its own customer and waiting for
 * the other's (a deadlock).
 */
export async function lockAttachParties(
  trx: Db,
  customerId: string,
  kind: string,
  value: string,
): Promise<void> {
  await sql`
    with recursive ${survivorCtes(sql`select ${customerId}::uuid as customer_id`)},
    parties(id) as (
      select id from survivor
      union
      select customer_id from identity where kind = ${kind} and value = ${value}
    )
    select c.id from customer c where c.id in (select id from parties)
    order by c.id
    for update of c`.execute(trx)
}

/**
 * Locks (for update, in id order, in one statement) the customers holding any of the identities,
 * then reads who holds them now: a merge or link that committed while we waited may have moved
 * one, and its new holder is locked too, until every holder is (HolderChanged after 10 rounds).
 * Returns the locked customers; a caller that checks them afterwards sees facts that stay true
 * until it commits. A new holder locked in a later round may come before one already held: a
 * caller runs again a transaction Postgres aborted in a deadlock (runAgainIfAborted).
 */
export async function lockIdentityHolders(
  trx: Db,
  identities: readonly { kind: IdentityKind; value: string }[],
): Promise<ReadonlySet<string>> {
  const locked = new Set<string>()
  if (identities.length === 0) return locked
  const pairs = sql.join(identities.map((i) => sql`(${i.kind}, ${i.value})`))
  const held = sql`identity where (kind, value) in (${pairs})`
  for (let round = 1; ; round++) {
    const { rows } = await sql<{ id: string }>`
      select c.id from customer c where c.id in (select customer_id from ${held})
      order by c.id for update of c`.execute(trx)
    // No holder: nothing was waited for, and what was read is still what is held.
    if (locked.size === 0 && rows.length === 0) return locked
    for (const row of rows) locked.add(row.id)
    const now = await sql<{ id: string; kind: IdentityKind }>`
      select customer_id as id, kind from ${held}`.execute(trx)
    const moved = now.rows.find((row) => !locked.has(row.id))
    if (!moved) return locked
    if (round === 10) throw new HolderChanged(moved.kind)
  }
}
