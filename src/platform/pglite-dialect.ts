import type { PGlite } from '@electric-sql/pglite'
import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely'
import { COPY_FROM_STDIN } from './copy.ts'

/**
 * Kysely dialect for embedded PGlite (one in-process Postgres, one session).
 * PGlite has a single session, so connections are handed out one at a time: a transaction
 * holds the session until it commits, and other queries wait for it.
 */
export function pgliteDialect(pg: PGlite): Dialect {
  return {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => createDriver(pg),
    createIntrospector: (db: Kysely<unknown>) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  }
}

function createDriver(pg: PGlite): Driver {
  let tail: Promise<void> = Promise.resolve()
  const releases = new WeakMap<DatabaseConnection, () => void>()
  const connection = (): DatabaseConnection => ({
    async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
      const copy = query.sql.startsWith(COPY_FROM_STDIN)
      const result = copy
        ? await pg.query<R>(
            query.sql.slice(COPY_FROM_STDIN.length).replace(/stdin$/i, "'/dev/blob'"),
            [],
            { blob: new Blob([String(query.parameters[0])]) },
          )
        : await pg.query<R>(query.sql, [...query.parameters])
      return {
        rows: result.rows,
        numAffectedRows:
          result.affectedRows === undefined ? undefined : BigInt(result.affectedRows),
      }
    },
    // biome-ignore lint/correctness/useYield: streaming is not supported by PGlite
    async *streamQuery() {
      throw new Error('streaming queries are not supported on embedded PGlite')
    },
  })
  return {
    async init() {},
    async acquireConnection() {
      const previous = tail
      let release!: () => void
      tail = new Promise<void>((resolve) => {
        release = resolve
      })
      await previous
      const conn = connection()
      releases.set(conn, release)
      return conn
    },
    async beginTransaction(conn: DatabaseConnection, settings: TransactionSettings) {
      const level = settings.isolationLevel ? ` isolation level ${settings.isolationLevel}` : ''
      await conn.executeQuery(CompiledQuery.raw(`begin${level}`))
    },
    async commitTransaction(conn: DatabaseConnection) {
      await conn.executeQuery(CompiledQuery.raw('commit'))
    },
    async rollbackTransaction(conn: DatabaseConnection) {
      await conn.executeQuery(CompiledQuery.raw('rollback'))
    },
    async releaseConnection(conn: DatabaseConnection) {
      releases.get(conn)?.()
    },
    async destroy() {
      await pg.close()
    },
  }
}
