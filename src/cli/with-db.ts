import { type Env, loadEnv } from '../config/env.ts'
import { assertMigrated, migrateToLatest } from '../main/migrate.ts'
import { createDb, type Database } from '../platform/db.ts'

/**
 * Runs a CLI action with a migrated database (see assertMigrated); prints a clear error and sets exit code 1.
 * `checkArgs` throws a UsageError for bad arguments before any database is opened (an embedded
 * one would otherwise be created and migrated only to refuse a typo).
 */
export async function withDb(
  fn: (db: Database, env: Env) => Promise<void>,
  checkArgs?: () => unknown,
): Promise<void> {
  let db: Database | undefined
  try {
    await checkArgs?.()
    const env = loadEnv()
    db = await createDb(env, { poolSize: 4 })
    // The embedded database is this machine's own: migrated here as at start-up. A shared one
    // is migrated only by `kizuna migrate` and start-up (assertMigrated).
    if (env.DATABASE_URL) await assertMigrated(db)
    else await migrateToLatest(db)
    await fn(db, env)
  } catch (error) {
    console.error(`error: ${error instanceof Error ? error.message : String(error)}`)
    process.exitCode = 1
  } finally {
    await db?.destroy()
  }
}

/** Runs a CLI action that needs no database; prints a clear error and sets exit code 1. */
export function runCommand(fn: () => void): void {
  try {
    fn()
  } catch (error) {
    console.error(`error: ${error instanceof Error ? error.message : String(error)}`)
    process.exitCode = 1
  }
}

/** For bad command-line input: the message is printed as is. */
export class UsageError extends Error {
  override name = 'UsageError'
}
