import { randomBytes } from 'node:crypto'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import type { DB } from '../../src/platform/db.ts'
import { TEST_DATABASE_URL } from './env.ts'
import { pgAdmin } from './pg-admin.ts'

/**
 * An empty database of its own (Kizuna migrates it at start), for a test whose Kizuna sweeps:
 * the sweeper takes every stale row it sees, and on the shared test database those are the rows
 * of other test files, which it would send through its own LINE stand-in.
 */
export async function createPrivateDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const url = new URL(TEST_DATABASE_URL)
  url.pathname = `${url.pathname}_${randomBytes(4).toString('hex')}`
  const name = url.pathname.slice(1)
  await pgAdmin(TEST_DATABASE_URL, `create database "${name}"`)
  return {
    url: url.toString(),
    drop: () => pgAdmin(TEST_DATABASE_URL, `drop database if exists "${name}" with (force)`),
  }
}

/**
 * A plain Kysely on the database at `url` (no Kizuna pool settings), for a test's own reads and
 * migrations. An idle connection's error (the backend ended: a `drop … with (force)` racing the
 * pool's end, which gave an uncaught 57P01 in a CI run) is dropped: pg's pool re-emits it on
 * itself, which throws without a listener. Queries still fail with their own errors.
 */
export function plainKysely(url: string): Kysely<DB> {
  const pool = new pg.Pool({ connectionString: url })
  pool.on('error', () => {})
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
}
