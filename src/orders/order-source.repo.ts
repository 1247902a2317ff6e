import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

/**
 * The spellings online orders were recorded under of `source`'s name in any letter case (one
 * primary-key probe), or null when no order named it yet.
 */
export async function findSourceSpellings(db: Db, source: string): Promise<string[] | null> {
  const row = await db
    .selectFrom('order_source')
    .select('spellings')
    .where('lower_source', '=', sql<string>`lower(${source})`)
    .executeTakeFirst()
  return row?.spellings ?? null
}

/**
 * Notes `source` as the spelling of its name, in the transaction recording an order under it;
 * false when another transaction noted its name first (this one waited for it to commit).
 */
export async function insertOrderSource(db: Db, source: string): Promise<boolean> {
  const inserted = await db
    .insertInto('order_source')
    .values({ lower_source: sql<string>`lower(${source})`, spellings: [source] })
    .onConflict((oc) => oc.column('lower_source').doNothing())
    .returning('lower_source')
    .executeTakeFirst()
  return inserted !== undefined
}
