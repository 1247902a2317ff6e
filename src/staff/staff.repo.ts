import type { Db } from '../platform/db.ts'

/** The store a staff member logs in to (shown in the page header). */
export async function findStoreById(db: Db, id: string) {
  return db
    .selectFrom('store')
    .select(['id', 'code', 'name'])
    .where('id', '=', id)
    .executeTakeFirst()
}
