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
  return db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(${taskKey(name)})`.execute(conn)
    return runThenUnlock(conn, name, fn)
  })
}

/**
 * withTaskLock without the wait: runs `fn` if no other run of the task `name` goes on, or
 * returns `{ ran: false }` at once (pg_try_advisory_lock; on the embedded database, a run under
 * way in this process). For a task that a run under way can do on the caller's behalf, so that
 * a job asking for it does not hold a worker slot and a connection while that run goes on.
 */
export async function tryWithTaskLock<T>(
  db: Database,
  name: string,
  fn: (db: Database) => Promise<T>,
): Promise<{ ran: true; value: T } | { ran: false }> {
  const dataDir = embeddedDataDir(db)
  if (dataDir !== undefined) {
    const key = `${dataDir}\n${name}`
    if (lastRuns.has(key)) return { ran: false }
    return { ran: true, value: await inTurn(key, () => fn(db)) }
  }
  return db.connection().execute(async (conn) => {
    const { rows } = await sql<{
      locked: boolean
    }>`select pg_try_advisory_lock(${taskKey(name)}) as locked`.execute(conn)
    if (!rows[0]?.locked) return { ran: false }
    return { ran: true, value: await runThenUnlock(conn, name, fn) }
  })
}

/** The advisory lock key of a task: keyed as every version has keyed it (withTaskLock). */
const taskKey = (name: string) => sql`hashtextextended(${name}, 7)`

/** Runs `fn` on `conn`, which holds the task's lock, and lets the lock go whatever happens. */
async function runThenUnlock<T>(
  conn: Database,
  name: string,
  fn: (db: Database) => Promise<T>,
): Promise<T> {
  try {
    return await fn(conn)
  } finally {
    await sql`select pg_advisory_unlock(${taskKey(name)})`.execute(conn)
  }
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
