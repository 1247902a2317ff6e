import { type CompiledQuery, Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { migrateToLatest } from '../../src/main/migrate.ts'
import { createDb, type Database, type DB } from '../../src/platform/db.ts'
import { createPrivateDatabase } from './private-database.ts'

/** The statements `run` sends through a database on `pool` (Kysely's own log of them). */
export async function statementsOf(
  pool: pg.Pool,
  run: (db: Kysely<DB>) => Promise<unknown>,
): Promise<CompiledQuery[]> {
  const statements: CompiledQuery[] = []
  const db = new Kysely<DB>({
    dialect: new PostgresDialect({ pool }),
    log: (event) => {
      if (event.level === 'query') statements.push(event.query)
    },
  })
  await run(db)
  return statements
}

export type PlanNode = {
  'Node Type': string
  'Relation Name'?: string
  'Index Name'?: string
  'Actual Rows'?: number
  'Actual Loops'?: number
  'Rows Removed by Filter'?: number
  Plans?: PlanNode[]
}

/** EXPLAIN (`analyze`: run, with the rows each node read) of a statement: its nodes, flattened. */
export async function planOf(
  pool: pg.Pool,
  statement: CompiledQuery,
  opts: { analyze?: boolean } = {},
): Promise<PlanNode[]> {
  const { rows } = await pool.query(
    `explain (format json${opts.analyze ? ', analyze' : ''}) ${statement.sql}`,
    [...statement.parameters],
  )
  const nodes: PlanNode[] = []
  const walk = (node: PlanNode) => {
    nodes.push(node)
    for (const child of node.Plans ?? []) walk(child)
  }
  walk(rows[0]['QUERY PLAN'][0].Plan)
  return nodes
}

/**
 * For a test file whose plans matter: a migrated database of its own (its tables hold only what
 * the file seeds, and are planned by that), as Kizuna's `db` and a `pool` to explain on, dropped
 * after the file's tests.
 */
export function usePlannedDatabase(): { db(): Database; pool(): pg.Pool } {
  let privateDb: Awaited<ReturnType<typeof createPrivateDatabase>> | undefined
  let db: Database | undefined
  let pool: pg.Pool | undefined
  beforeAll(async () => {
    privateDb = await createPrivateDatabase()
    db = await createDb(loadEnv({ DATABASE_URL: privateDb.url }), { poolSize: 2 })
    await migrateToLatest(db)
    pool = new pg.Pool({ connectionString: privateDb.url, max: 2 })
    // An idle connection ended by the drop below racing the pool's end: see plainKysely.
    pool.on('error', () => {})
  })
  afterAll(async () => {
    await pool?.end()
    await db?.destroy()
    await privateDb?.drop()
  })
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('usePlannedDatabase: used before its beforeAll')
    return value
  }
  return { db: () => started(db), pool: () => started(pool) }
}
