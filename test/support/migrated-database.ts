import { randomUUID } from 'node:crypto'
import type { Insertable, Kysely } from 'kysely'
import { expect } from 'vitest'
import { createMigrator } from '../../src/main/migrate.ts'
import type { DB } from '../../src/platform/db.ts'
import { createPrivateDatabase, plainKysely } from './private-database.ts'

/**
 * A database of its own migrated up to `before` (inclusive), for testing what a later migration
 * does to rows written before it; `migrateToLatest` then runs the rest (or `kizuna migrate` with
 * DATABASE_URL `url`, to see what it prints). `close` drops it.
 */
export async function databaseMigratedTo(before: string) {
  const database = await createPrivateDatabase()
  const db = plainKysely(database.url)
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

/** A new customer with nothing else, in a database migrated part of the way. */
export async function bareCustomer(db: Kysely<DB>): Promise<string> {
  const { id } = await db
    .insertInto('customer')
    .values({ display_name: null })
    .returning('id')
    .executeTakeFirstOrThrow()
  return id
}

/** A new customer holding the legacy card `value`, in a database migrated part of the way. */
export async function customerWithLegacyCard(db: Kysely<DB>, value: string): Promise<string> {
  const id = await bareCustomer(db)
  await db.insertInto('identity').values({ customer_id: id, kind: 'legacy_card', value }).execute()
  return id
}

/**
 * Campaign deliveries of a new customer as an earlier schema held them (each row's columns over
 * the defaults), in a database migrated part of the way: their ids, in order, and what
 * `line_first_call_at` each has once the test ran the migrations.
 */
export async function legacyDeliveries(
  db: Kysely<DB>,
  rows: Partial<Insertable<DB['delivery']>>[],
) {
  const { id: customerId } = await db
    .insertInto('customer')
    .values({ display_name: null })
    .returning('id')
    .executeTakeFirstOrThrow()
  const inserted = await db
    .insertInto('delivery')
    .values(
      rows.map((row) => ({
        customer_id: customerId,
        dedupe_key: `test:${randomUUID()}`,
        kind: 'campaign',
        template_id: 'campaign-sample',
        ...row,
      })),
    )
    .returning('id')
    .execute()
  const ids = inserted.map((r) => r.id)
  return {
    ids,
    async firstCalls(): Promise<(Date | null)[]> {
      const after = await db
        .selectFrom('delivery')
        .select(['id', 'line_first_call_at'])
        .where('id', 'in', ids)
        .execute()
      return ids.map((id) => after.find((r) => r.id === id)?.line_first_call_at ?? null)
    },
  }
}
