import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { FileMigrationProvider, type Kysely, type MigrationResult, Migrator, sql } from 'kysely'
import { NETWORK_CODES } from '../platform/errors.ts'

export const migrationFolder = fileURLToPath(new URL('../../migrations', import.meta.url))

// biome-ignore lint/suspicious/noExplicitAny: migrations run before the schema they create exists
export function createMigrator(db: Kysely<any>): Migrator {
  return new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder }),
  })
}

/** The database could not be reached or logged in to: no migration ran, none failed. */
export class DatabaseUnreachableError extends Error {
  override name = 'DatabaseUnreachableError'
}

/**
 * Network errors (NETWORK_CODES), 3D000 (no such database), 08xxx (connection exception), 28xxx
 * (login refused): DATABASE_URL's fault. Not errors.ts's isConnectionError, which counts a
 * read-only server (25006) too: that one was reached.
 */
function isConnectionError(error: Error): boolean {
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code) || code === '3D000') return true
    if (code.startsWith('08') || code.startsWith('28')) return true
  }
  // node-postgres' pool timeout carries no code.
  return /connection timeout|Connection terminated/i.test(error.message)
}

/**
 * A connection error as DATABASE_URL's fault, or the error as it is. Node's connection to
 * `localhost` (IPv4 and IPv6) fails with an AggregateError whose own message is empty.
 */
export function explainDatabaseError(error: unknown): unknown {
  if (!(error instanceof Error) || !isConnectionError(error)) return error
  const inner = error instanceof AggregateError ? error.errors.map((e) => String(e?.message)) : []
  const detail = error.message || inner.join('; ') || String((error as { code?: unknown }).code)
  // Drivers name hosts and users, not passwords; a URL in a message loses its password anyway.
  const safe = detail.replace(/(\/\/[^/:@\s]*):[^@\s]*@/g, '$1:***@')
  return new DatabaseUnreachableError(`cannot reach the database (DATABASE_URL): ${safe}`)
}

/**
 * A database in another encoding than UTF8 (SQL_ASCII, which Debian's package makes when no
 * locale is set) stores Japanese text as bytes: length('あ') is 3, and jsonb refuses "\u3042".
 */
// biome-ignore lint/suspicious/noExplicitAny: see createMigrator
async function assertUtf8(db: Kysely<any>): Promise<void> {
  let encoding: string | undefined
  try {
    const { rows } = await sql<{ server_encoding: string }>`show server_encoding`.execute(db)
    encoding = rows[0]?.server_encoding
  } catch (error) {
    throw explainDatabaseError(error)
  }
  if (encoding !== 'UTF8') {
    throw new Error(
      `the database (DATABASE_URL) is encoded ${encoding}; Kizuna stores Japanese text and needs ` +
        'UTF8: create it with `createdb -E UTF8 -T template0 NAME`',
    )
  }
}

/** Applies every pending migration; throws with the failing migration's name. */
// biome-ignore lint/suspicious/noExplicitAny: see createMigrator
export async function migrateToLatest(db: Kysely<any>): Promise<MigrationResult[]> {
  await assertUtf8(db)
  const { error, results } = await createMigrator(db).migrateToLatest()
  const failed = results?.find((r) => r.status === 'Error')
  if (error) {
    const explained = explainDatabaseError(error)
    if (explained instanceof DatabaseUnreachableError) throw explained
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed`, { cause: error })
  }
  return results ?? []
}

/**
 * Throws unless every migration of this checkout has been applied: a command run from a newer
 * checkout against a shared DATABASE_URL must not change the schema under the processes still
 * running the older code (only `kizuna migrate` and start-up apply migrations there).
 */
// biome-ignore lint/suspicious/noExplicitAny: see createMigrator
export async function assertMigrated(db: Kysely<any>): Promise<void> {
  await assertUtf8(db)
  let migrations: Awaited<ReturnType<Migrator['getMigrations']>>
  try {
    migrations = await createMigrator(db).getMigrations()
  } catch (error) {
    throw explainDatabaseError(error)
  }
  const pending = migrations.filter((m) => m.executedAt === undefined)
  const first = pending[0]
  if (!first) return
  const count = pending.length === 1 ? '1 migration' : `${pending.length} migrations`
  throw new Error(
    `the database (DATABASE_URL) lacks ${count} of this checkout (the first: ${first.name}); ` +
      'run `npx kizuna migrate` (or start Kizuna, which applies them) first',
  )
}
