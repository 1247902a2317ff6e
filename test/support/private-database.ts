import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { TEST_DATABASE_URL } from './env.ts'

/**
 * An empty database of its own (Kizuna migrates it at start), for a test whose Kizuna sweeps:
 * the sweeper takes every stale row it sees, and on the shared test database those are the rows
 * of other test files, which it would send through its own LINE stand-in.
 */
export async function createPrivateDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const url = new URL(TEST_DATABASE_URL)
  url.pathname = `${url.pathname}_${randomBytes(4).toString('hex')}`
  const name = url.pathname.slice(1)
  await admin(`create database "${name}"`)
  return {
    url: url.toString(),
    drop: () => admin(`drop database if exists "${name}" with (force)`),
  }
}

async function admin(statement: string): Promise<void> {
  const url = new URL(TEST_DATABASE_URL)
  url.pathname = '/postgres'
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  try {
    await client.query(statement)
  } finally {
    await client.end()
  }
}
