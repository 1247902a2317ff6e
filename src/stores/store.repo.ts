import type { Db } from '../platform/db.ts'

export async function insertStore(db: Db, store: { code: string; name: string }) {
  return db
    .insertInto('store')
    .values(store)
    .onConflict((oc) => oc.column('code').doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function findStoreByCode(db: Db, code: string) {
  return db.selectFrom('store').selectAll().where('code', '=', code).executeTakeFirst()
}

export async function listStores(db: Db) {
  return db.selectFrom('store').selectAll().orderBy('code').execute()
}
