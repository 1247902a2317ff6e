import { randomBytes } from 'node:crypto'
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
