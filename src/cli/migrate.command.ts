import type { Command } from 'commander'
import { NO_MIGRATIONS } from 'kysely'
import { loadEnv } from '../config/env.ts'
import { createMigrator, explainDatabaseError, migrateToLatest } from '../main/migrate.ts'
import { createDb, type Database } from '../platform/db.ts'

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('apply pending database migrations (DATABASE_URL, or the embedded database)')
    .option('--down', 'revert the most recent migration instead')
    .option('--reset', 'revert every migration (drops all Kizuna tables)')
    .action(async (opts: { down?: boolean; reset?: boolean }) => {
      // Inside the try: a bad variable is reported like any other error, every one of them.
      let db: Database | undefined
      try {
        db = await createDb(loadEnv(), { poolSize: 1 })
        if (opts.down || opts.reset) {
          const migrator = createMigrator(db)
          const { error, results } = opts.reset
            ? await migrator.migrateTo(NO_MIGRATIONS)
            : await migrator.migrateDown()
          for (const r of results ?? [])
            console.log(`${r.status.toLowerCase()}: ${r.migrationName}`)
          if (error) throw explainDatabaseError(error)
          return
        }
        const results = await migrateToLatest(db)
        for (const r of results) console.log(`applied: ${r.migrationName}`)
        console.log(results.length === 0 ? 'database is up to date' : `${results.length} applied`)
      } catch (error) {
        console.error(error instanceof Error ? error.message : error)
        if (error instanceof Error && error.cause) console.error(describeCause(error.cause))
        process.exitCode = 1
      } finally {
        await db?.destroy()
      }
    })
}

/**
 * What a failed migration's cause may print. Postgres quotes rows in a database error's `detail`
 * (`Failing row contains (…, L881234, …)`) and `where`: only its message, code, table and
 * constraint are printed, as the logger keeps (platform/logger.ts). Any other error (a mistake
 * in a migration's code) is printed with its stack.
 */
function describeCause(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause)
  const e = cause as Error & Record<'code' | 'table' | 'constraint', unknown>
  if (!(typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code))) {
    return cause.stack ?? cause.message
  }
  const fields = (['code', 'table', 'constraint'] as const)
    .filter((key) => typeof e[key] === 'string' && e[key] !== '')
    .map((key) => `${key}: ${e[key]}`)
  return `${cause.message} (${fields.join(', ')})`
}
