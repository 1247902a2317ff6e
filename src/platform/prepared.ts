import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { CompiledQuery, type QueryResult, type RawBuilder } from 'kysely'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { COPY_FROM_STDIN } from './copy.ts'
import type { Db } from './db.ts'
import { isPostgresOutage, isRefusedWrite } from './errors.ts'
import { markOutageError, type Outage } from './outage.ts'
import type { WatchedClient } from './stalled-connections.ts'

/**
 * Statements whose text starts with this comment run as named prepared statements on each pooled
 * connection: parsed and planned once per connection instead of on every call. For the hot,
 * fixed-text statements (the register scan, the webhook inbox, delivery claims); everything else
 * runs as usual. On embedded PGlite the comment is only a comment.
 */
export const PREPARE = '/*prepare*/ '

type QueryArgs = Parameters<pg.Client['query']>

/**
 * The pool's client: prepares marked statements (pg keeps the names it prepared per connection),
 * runs marked COPY statements (see copyFromStdin),
 * and never lets a lost connection crash the process. pg emits `error` on a client whose
 * connection ends, and pg-pool listens only while the client is idle: a connection lost during a
 * query (Postgres restarted, a network partition ending) was an uncaught exception. The query
 * itself rejects with the same error, and the pool drops the client when it is released.
 */
export class PreparingClient extends pg.Client implements WatchedClient {
  /** The Postgres backend's pid (pg sets it at connect; its types leave it out). */
  declare readonly processID: number | null
  /** Queries sent and not yet answered, and when the oldest of them went out. */
  private unanswered = 0
  private sentAt = 0

  /**
   * Told when Postgres cannot be reached (a connect fails) or cannot serve (a query fails with an
   * outage's SQLSTATE: read-only after a failover, shut down under a query), and when it serves
   * again: a query succeeds. Not at a connect: a read-only standby takes connections, and each
   * new one ended its outage, to be logged again at the next write.
   */
  private readonly outage: Outage | undefined

  constructor(...args: ConstructorParameters<typeof pg.Client>) {
    super(...args)
    this.outage = (args[0] as { outage?: Outage } | undefined)?.outage
    this.on('error', () => {})
  }

  // @ts-expect-error pg's connect() is overloaded (callback or promise); this keeps both.
  override connect(callback?: (err: Error | null) => void) {
    const noted = (err: Error | null) => {
      if (!err || !this.outage) return
      this.outage.failed(err)
      markOutageError(err)
    }
    if (callback) {
      return super.connect((err: Error | null) => {
        noted(err)
        callback(err)
      })
    }
    return super.connect().then(
      () => noted(null),
      (err: Error) => {
        noted(err)
        throw err
      },
    )
  }

  get waitingSince(): number | null {
    return this.unanswered > 0 ? this.sentAt : null
  }

  abandon(reason: Error): void {
    // The socket's error fails every query under way with `reason`; the pool drops the client.
    this.connection.stream.destroy(reason)
  }

  // @ts-expect-error pg's query() is overloaded; this forwards every form unchanged.
  override query(...args: QueryArgs) {
    const result = this.send(args)
    if (result instanceof Promise) {
      if (this.unanswered++ === 0) this.sentAt = performance.now()
      result.then(this.succeeded, this.failed)
    }
    return result
  }

  // Made once per connection, not per query: the success path is every hot statement's.
  private readonly succeeded = (result: unknown) => {
    if (--this.unanswered > 0) this.sentAt = performance.now()
    if (this.outage?.down) servedAgain(this.outage, result)
  }

  private readonly failed = (error: unknown) => {
    if (--this.unanswered > 0) this.sentAt = performance.now()
    if (this.outage && isPostgresOutage(error)) {
      if (isRefusedWrite(error)) refusingWrites.add(this.outage)
      this.outage.failed(error)
      markOutageError(error)
    }
  }

  private send(args: QueryArgs) {
    const [text, values] = args as unknown[]
    if (typeof text === 'string' && text.startsWith(COPY_FROM_STDIN) && Array.isArray(values)) {
      return this.runCopy(text.slice(COPY_FROM_STDIN.length), String(values[0]))
    }
    if (typeof text === 'string' && text.startsWith(PREPARE) && typeof values !== 'function') {
      const name = statementName(text)
      const result = super.query({ name, text, values: values as unknown[] | undefined })
      return result.catch((error: unknown) => {
        // This connection's statement no longer fits: the pool drops the client on release.
        if (isStalePrepared(error)) void this.end().catch(() => {})
        throw error
      })
    }
    return (super.query as (...a: unknown[]) => unknown)(...args)
  }

  /**
   * `copy … from stdin` with `data`, answered the way pg answers a query; as an INSERT, which
   * it is, so that Kysely passes the row count on.
   */
  private async runCopy(statement: string, data: string) {
    const copy = super.query(copyFrom(statement))
    await pipeline(Readable.from([data]), copy)
    return { command: 'INSERT', rowCount: copy.rowCount, rows: [], fields: [] }
  }
}

/** Outages of a Postgres that refuses writes (isRefusedWrite): a read does not end them. */
const refusingWrites = new WeakSet<Outage>()

/** A query succeeded during `outage`: it ends, unless only writes failed and this one read. */
function servedAgain(outage: Outage, result: unknown): void {
  if (refusingWrites.has(outage)) {
    const results = Array.isArray(result) ? result : [result]
    const wrote = results.some((r) => WRITES.test((r as { command?: unknown }).command as string))
    if (!wrote) return
    refusingWrites.delete(outage)
  }
  outage.answered()
}

/** Commands a read-only transaction refuses (pg's `command` of a result). */
const WRITES = /^(INSERT|UPDATE|DELETE|MERGE|COPY|CREATE|ALTER|DROP|TRUNCATE)$/

/** Names by statement text: hashing a scan's ~5 kB text on every call showed in profiles. */
const names = new Map<string, string>()
const MAX_NAMES = 1_000

function statementName(text: string): string {
  let name = names.get(text)
  if (!name) {
    name = `k${createHash('sha1').update(text).digest('base64url').slice(0, 20)}`
    if (names.size >= MAX_NAMES) names.clear() // hot statements have a handful of texts
    names.set(text, name)
  }
  return name
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
  const query = CompiledQuery.raw(text, [...parameters])
  for (let attempt = 1; ; attempt++) {
    try {
      return await target.executeQuery<R>(query)
    } catch (error) {
      // Outside a transaction nothing ran: again, on another connection (each stale one is
      // closed as it fails). In a transaction the caller's retry starts over.
      if (db.isTransaction || attempt >= STALE_RETRIES || !isStalePrepared(error)) throw error
    }
  }
}

/** How often a statement is tried on connections whose prepared version went stale. */
const STALE_RETRIES = 5

/**
 * A statement prepared on a connection before a migration changed a table it reads: Postgres
 * refuses it ("cached plan must not change result type"), or it is gone (`DISCARD ALL`).
 */
function isStalePrepared(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === '0A000' || code === '26000'
}
