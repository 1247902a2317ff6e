import { randomBytes } from 'node:crypto'
import { Kysely, NO_MIGRATIONS, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { createMigrator } from '../../src/main/migrate.ts'
import { botUserIdFor } from '../../src/sandbox/sandbox-channel.ts'
import { OFFICIAL_VECTOR } from './official-vector.ts'
import { pgAdmin } from './pg-admin.ts'

const BASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/kizuna_test'

/**
 * Creates a fresh database for this run (its own name, so runs side by side never share one),
 * runs every migration down and up again, records the test channel as the one it serves, and
 * drops the database when the run ends.
 *
 * One database, one LINE channel holds in the tests too: every test file's stand-in on this
 * shared database is the test channel (TEST_CHANNEL_SECRET, so the same bot user id), as many
 * stand-ins of one channel (a sandbox restarted). Recorded here, not by whichever file starts
 * Kizuna first: a file starting another channel (the sandbox) on it is refused, always, and
 * needs a database of its own.
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
    await sql`insert into line_channel (bot_user_id)
      values (${botUserIdFor(OFFICIAL_VECTOR.secret)})`.execute(db)
  } finally {
    await db.destroy()
  }
  return () => pgAdmin(BASE_URL, `drop database if exists "${name}" with (force)`)
}
