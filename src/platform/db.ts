import { mkdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Kysely, PostgresDialect, type Transaction } from 'kysely'
import pg from 'pg'
import type { Env } from '../config/env.ts'
import type { DB } from './db.generated.ts'
import { pgliteDialect } from './pglite-dialect.ts'
import { PreparingClient } from './prepared.ts'

export type { DB }
export type Database = Kysely<DB>
export type Db = Kysely<DB> | Transaction<DB>

// int8 (count(*), sums) as strings on both engines, like node-postgres does by default.
const INT8_OID = 20

export async function createDb(
  env: Pick<Env, 'DATABASE_URL' | 'DATA_DIR'>,
  opts: { poolSize?: number } = {},
): Promise<Database> {
  if (env.DATABASE_URL) {
    const pool = new pg.Pool({
      connectionString: env.DATABASE_URL,
      max: opts.poolSize ?? 20,
      connectionTimeoutMillis: 5_000,
      Client: PreparingClient as unknown as typeof pg.Client,
    })
    pool.on('error', () => {
      // An idle client lost its connection; the pool replaces it. Queries report their own errors.
    })
    return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
  }
  const { PGlite } = await import('@electric-sql/pglite')
  const dataDir = resolve(env.DATA_DIR, 'pglite')
  await mkdir(dataDir, { recursive: true })
  const embedded = await PGlite.create(dataDir, {
    parsers: { [INT8_OID]: (value: string) => value },
  })
  return new Kysely<DB>({ dialect: pgliteDialect(embedded) })
}
