import { sql } from 'kysely'
import { type Database, embeddedDataDir } from './db.ts'

/**
 * Runs `fn` while no other run of the task `name` goes on, in this process or another: for a long
 * task whose steps commit one by one (a crash keeps what was done) and that calls LINE between
 * them, so a transaction-level lock would not do. `fn` gets the database to run its steps on.
 *
 * Postgres: a session-level advisory lock, held by a connection of its own for the whole task,
 * on which `fn` runs; the one-key form, which no other kind of lock uses (advisory-locks.ts), keyed
 * as every version has keyed it, so a deploy still waits for an older process's. Embedded PGlite: its one session cannot be held for the task (every webhook
 * insert and register scan would wait for it), and lockDataDir already keeps other processes
 * out; the runs of the task wait for each other in this process, and `fn` uses the database as
 * everything else does, a statement at a time.
 */
export async function withTaskLock<T>(
  db: Database,
  name: string,
  fn: (db: Database) => Promise<T>,
): Promise<T> {
  const dataDir = embeddedDataDir(db)
  if (dataDir !== undefined) return inTurn(`${dataDir}\n${name}`, () => fn(db))
  const key = sql`hashtextextended(${name}, 7)`
  return db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(${key})`.execute(conn)
    try {
      return await fn(conn)
    } finally {
      await sql`select pg_advisory_unlock(${key})`.execute(conn)
    }
  })
}

/** The end of the last run queued under each key (never rejects). */
const lastRuns = new Map<string, Promise<void>>()

/** Runs `fn` once the runs queued before under `key` have ended. */
async function inTurn<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const run = (lastRuns.get(key) ?? Promise.resolve()).then(fn)
  const ended = run.then(
    () => {},
    () => {},
  )
  lastRuns.set(key, ended)
  try {
    return await run
  } finally {
    if (lastRuns.get(key) === ended) lastRuns.delete(key)
  }
}
