import { createHash } from 'node:crypto'
import { CompiledQuery, type QueryResult, type RawBuilder } from 'kysely'
import pg from 'pg'
import type { Db } from './db.ts'

/**
 * Statements whose text starts with this comment run as named prepared statements on each pooled
 * connection: parsed and planned once per connection instead of on every call. For the hot,
 * fixed-text statements (the register scan, the webhook inbox, delivery claims); everything else
 * runs as usual. On embedded PGlite the comment is only a comment.
 */
export const PREPARE = '/*prepare*/ '

type QueryArgs = Parameters<pg.Client['query']>

/** A pg client that prepares marked statements (pg keeps the names it prepared per connection). */
export class PreparingClient extends pg.Client {
  // @ts-expect-error pg's query() is overloaded; this forwards every form unchanged.
  override query(...args: QueryArgs) {
    const [text, values] = args as unknown[]
    if (typeof text === 'string' && text.startsWith(PREPARE) && typeof values !== 'function') {
      const name = `k${createHash('sha1').update(text).digest('base64url').slice(0, 20)}`
      return super.query({ name, text, values: values as unknown[] | undefined })
    }
    return (super.query as (...a: unknown[]) => unknown)(...args)
  }
}

const preparedDbs = new WeakMap<object, Db>()

/** Where `db`'s prepared statements run outside a transaction (createDb's generic-plan pool). */
export function registerPreparedDb(db: Db, preparedDb: Db): void {
  preparedDbs.set(db, preparedDb)
}

/**
 * Runs a raw query as a prepared statement (see PREPARE): for hot statements with a fixed text.
 * Outside a transaction it runs on the connections that plan it once (generic plan).
 */
export async function executePrepared<R>(db: Db, query: RawBuilder<R>): Promise<QueryResult<R>> {
  const compiled = query.compile(db)
  return executePreparedText<R>(db, PREPARE + compiled.sql, compiled.parameters)
}

/** executePrepared for SQL text already marked with PREPARE (and compacted by its caller). */
export async function executePreparedText<R>(
  db: Db,
  text: string,
  parameters: readonly unknown[],
): Promise<QueryResult<R>> {
  if (!text.startsWith(PREPARE)) throw new Error('executePreparedText: the text is not marked')
  const target = db.isTransaction ? db : (preparedDbs.get(db) ?? db)
  return target.executeQuery<R>(CompiledQuery.raw(text, [...parameters]))
}
