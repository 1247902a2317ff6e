import { Kysely, NO_MIGRATIONS, PostgresDialect } from 'kysely'
import pg from 'pg'
import { createMigrator } from '../../src/main/migrate.ts'
import { TEST_DATABASE_URL } from './env.ts'

/** Recreates the test database, then runs every migration down and up again. */
export default async function setup(): Promise<void> {
  const url = new URL(TEST_DATABASE_URL)
  const name = url.pathname.slice(1)
  const adminUrl = new URL(TEST_DATABASE_URL)
  adminUrl.pathname = '/postgres'
  const admin = new pg.Client({ connectionString: adminUrl.toString() })
  await admin.connect()
  await admin.query(`drop database if exists "${name}" with (force)`)
  await admin.query(`create database "${name}"`)
  await admin.end()

  const db = new Kysely<unknown>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: TEST_DATABASE_URL }) }),
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
}
