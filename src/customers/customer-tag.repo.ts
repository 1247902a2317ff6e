import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

/** The customer's tags in code-point order (the same order whatever the database's locale). */
export async function listCustomerTags(db: Db, customerId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('customer_tag')
    .select('tag')
    .where('customer_id', '=', customerId)
    .orderBy(sql`tag collate "C"`)
    .execute()
  return rows.map((r) => r.tag)
}

/** Adds the (normalised) tags the customer does not carry yet; returns how many were new. */
export async function insertCustomerTags(
  db: Db,
  customerId: string,
  tags: readonly string[],
): Promise<number> {
  if (tags.length === 0) return 0
  const inserted = await db
    .insertInto('customer_tag')
    .values([...new Set(tags)].map((tag) => ({ customer_id: customerId, tag })))
    .onConflict((oc) => oc.columns(['customer_id', 'tag']).doNothing())
    .executeTakeFirst()
  return Number(inserted.numInsertedOrUpdatedRows ?? 0)
}

export async function deleteCustomerTags(
  db: Db,
  customerId: string,
  tags?: readonly string[],
): Promise<void> {
  let query = db.deleteFrom('customer_tag').where('customer_id', '=', customerId)
  if (tags) {
    if (tags.length === 0) return
    query = query.where('tag', 'in', tags)
  }
  await query.execute()
}

/**
 * Gives `toId` every tag of `fromId` it lacks (a tag both carry stays once) and takes them
 * off `fromId`; returns how many tags `toId` gained.
 */
export async function moveCustomerTags(db: Db, fromId: string, toId: string): Promise<number> {
  const moved = await db
    .insertInto('customer_tag')
    .columns(['customer_id', 'tag', 'created_at'])
    .expression((eb) =>
      eb
        .selectFrom('customer_tag')
        .select([sql<string>`${toId}::uuid`.as('customer_id'), 'tag', 'created_at'])
        .where('customer_id', '=', fromId),
    )
    .onConflict((oc) => oc.columns(['customer_id', 'tag']).doNothing())
    .executeTakeFirst()
  await deleteCustomerTags(db, fromId)
  return Number(moved.numInsertedOrUpdatedRows ?? 0)
}
