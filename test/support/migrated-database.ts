import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { expect } from 'vitest'
import { createMigrator } from '../../src/main/migrate.ts'
import type { DB } from '../../src/platform/db.ts'
import { createPrivateDatabase } from './private-database.ts'

/**
 * A database of its own migrated up to `before` (inclusive), for testing what a later migration
 * does to rows written before it; `migrateToLatest` then runs the rest (or `kizuna migrate` with
 * DATABASE_URL `url`, to see what it prints). `close` drops it.
 */
export async function databaseMigratedTo(before: string) {
  const database = await createPrivateDatabase()
  const db = new Kysely<DB>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url }) }),
  })
  const migrator = createMigrator(db)
  expect((await migrator.migrateTo(before)).error).toBeUndefined()
  return {
    db,
    url: database.url,
    async migrateToLatest() {
      expect((await migrator.migrateToLatest()).error).toBeUndefined()
    },
    async close() {
      await db.destroy()
      await database.drop()
    },
  }
}

/** A new customer holding the legacy card `value`, in a database migrated part of the way. */
export async function customerWithLegacyCard(db: Kysely<DB>, value: string): Promise<string> {
  const { id } = await db
    .insertInto('customer')
    .values({ display_name: null })
    .returning('id')
    .executeTakeFirstOrThrow()
  await db.insertInto('identity').values({ customer_id: id, kind: 'legacy_card', value }).execute()
  return id
}
