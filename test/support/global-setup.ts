import { randomBytes } from 'node:crypto'
import { Kysely, NO_MIGRATIONS, PostgresDialect } from 'kysely'
import pg from 'pg'
import { createMigrator } from '../../src/main/migrate.ts'
import { pgAdmin } from './pg-admin.ts'

const BASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/kizuna_test'

/**
 * Creates a fresh database for this run (its own name, so runs side by side never share one),
 * runs every migration down and up again, and drops the database when the run ends.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const url = new URL(BASE_URL)
  url.pathname = `/${url.pathname.slice(1)}_${randomBytes(4).toString('hex')}`
  const name = url.pathname.slice(1)
  await pgAdmin(BASE_URL, `create database "${name}"`)
  process.env.TEST_DATABASE_URL = url.toString()

  const db = new Kysely<unknown>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url.toString() }) }),
  })
  try {
    const migrator = createMigrator(db)
    for (const step of [
      () => migrator.migrateToLatest(),
      () => migrator.migrateTo(NO_MIGRATIONS),
      () => migrator.migrateToLatest(),
    ]) {
      const { error } = await step()
      if (error) throw error
    }
  } finally {
    await db.destroy()
  }
  return () => pgAdmin(BASE_URL, `drop database if exists "${name}" with (force)`)
}
