import pg from 'pg'
import type { Logger } from './logger.ts'

/** What the watch needs of a pooled connection (PreparingClient). */
export type WatchedClient = {
  readonly processID: number | null
  /** When its unanswered query went out (performance.now()), or null while it waits for none. */
  readonly waitingSince: number | null
  /** Fails its queries with `reason` and closes the connection; the pool then drops it. */
  abandon(reason: Error): void
}

/** A query unanswered this long gets its connection checked (by default). */
export const STALLED_AFTER_MS = 10_000
const PROBE_TIMEOUT_MS = 2_000

/**
 * Closes connections Postgres no longer answers on. After a failover, or a firewall or NAT that
 * silently dropped them, a query sent on such a connection waits until the kernel gives up on
 * it: ~15 minutes, or never behind a proxy that keeps it open. Each such query held its
 * connection and its caller (a job, a readiness check) meanwhile; with all of a pool's
 * connections stuck, the worker stopped and /readyz stayed 503 until a restart, though
 * Postgres answered new connections all along.
 *
 * A slow query and a dead connection look alike from here (Postgres sends nothing while it
 * works), so Postgres is asked, on a connection of its own: a query unanswered for
 * `stalledAfterMs` whose backend is idle (it never got the query, or its answer was lost) is
 * dead. A backend that is running it (a long report, a lock wait) is left alone, and so is one
 * Postgres does not know (a connection pooler's ids, or a new server after a failover, where
 * the kernel's timeout still ends it).
 */
export function watchStalledConnections(opts: {
  connectionString: string
  clients: () => Iterable<WatchedClient>
  stalledAfterMs?: number
  log?: Logger
}): { stop(): void } {
  const stalledAfterMs = opts.stalledAfterMs ?? STALLED_AFTER_MS
  let checking = false
  const check = async () => {
    if (checking) return
    const now = performance.now()
    const stalled = [...opts.clients()].filter(
      (c) =>
        c.processID !== null && c.waitingSince !== null && now - c.waitingSince >= stalledAfterMs,
    )
    if (stalled.length === 0) return
    checking = true
    try {
      const idle = await idleBackends(
        opts.connectionString,
        stalled.map((c) => c.processID as number),
        stalledAfterMs / 2,
      )
      const dead = stalled.filter((c) => idle.has(c.processID as number))
      if (dead.length === 0) return
      const seconds = Math.round(stalledAfterMs / 1000)
      // ECONNABORTED: a connection this end aborted, which isConnectionError knows.
      const reason = Object.assign(
        new Error(
          `Postgres connection closed: its query had no answer in ${seconds} s and Postgres was ` +
            'not running it (a failover, or the network dropped the connection)',
        ),
        { code: 'ECONNABORTED' },
      )
      for (const client of dead) client.abandon(reason)
      opts.log?.warn(
        { connections: dead.length },
        `closed Postgres connections that Postgres no longer answered on (no answer in ${seconds} s); new ones replace them`,
      )
    } catch {
      // Postgres cannot be reached at all: nothing to tell apart; the next check asks again.
    } finally {
      checking = false
    }
  }
  const timer = setInterval(() => void check(), stalledAfterMs / 2)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}

/** Of these backends, those idle for at least `idleMs`: a query sent to them never arrived. */
async function idleBackends(
  connectionString: string,
  pids: number[],
  idleMs: number,
): Promise<Set<number>> {
  const probe = new pg.Client({
    connectionString,
    connectionTimeoutMillis: PROBE_TIMEOUT_MS,
    query_timeout: PROBE_TIMEOUT_MS,
  })
  probe.on('error', () => {})
  try {
    await probe.connect()
    const { rows } = await probe.query<{ pid: number }>(
      `select pid from pg_stat_activity
        where pid = any($1::int[]) and state like 'idle%'
          and state_change < now() - make_interval(secs => $2)`,
      [pids, idleMs / 1000],
    )
    probe.end().catch(() => {})
    return new Set(rows.map((r) => r.pid))
  } catch (error) {
    // end() would wait for a Postgres that does not answer.
    probe.connection.stream.destroy()
    throw error
  }
}
