import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { createDb } from '../../src/platform/db.ts'
import { isConnectionError } from '../../src/platform/errors.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { withTimeout } from '../../src/platform/timeout.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { startFrozenProxy } from '../support/frozen-proxy.ts'
import { logSink } from '../support/log-sink.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

const times = (n: number) => Array.from({ length: n }, (_, i) => i)

describe('connections Postgres no longer answers on', () => {
  it('are closed and replaced, so the pool recovers without a restart', async () => {
    const target = new URL(TEST_DATABASE_URL)
    const proxy = await startFrozenProxy({
      host: target.hostname,
      port: Number(target.port || 5432),
    })
    const viaProxy = new URL(TEST_DATABASE_URL)
    viaProxy.host = `127.0.0.1:${proxy.port}`
    const logs = logSink()
    const db = await createDb(
      { DATABASE_URL: viaProxy.toString(), DATA_DIR: '' },
      { poolSize: 4, log: createLogger('info', logs.sink), stalledAfterMs: 1_000 },
    )
    cleanups.push(() => db.destroy())
    // Closes the silent connections first: the pool waits for them to end.
    cleanups.push(() => proxy.close())
    // Four connections open, then idle in the pool.
    await Promise.all(times(4).map(() => sql`select pg_sleep(0.05)`.execute(db)))

    // A failover, or a firewall dropping them: they are neither answered nor reset any more.
    proxy.silenceExisting()
    const onSilent = await withTimeout(
      Promise.allSettled(times(4).map(() => sql`select 1 as n`.execute(db))),
      6_000,
      'queries on connections Postgres no longer answers on',
    )
    expect(onSilent.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected'])
    const reasons = onSilent.map((r) => String((r as PromiseRejectedResult).reason))
    expect(reasons).toEqual(Array(4).fill(expect.stringContaining('Postgres was not running it')))
    // Each a 503 to try again, not an internal error.
    for (const r of onSilent)
      expect(isConnectionError((r as PromiseRejectedResult).reason)).toBe(true)
    expect(logs.entries()).toContainEqual(
      expect.objectContaining({ level: 40, msg: expect.stringContaining('Postgres') }),
    )

    // New connections take their place; a query Postgres is running, however long, goes on.
    const { rows } = await sql<{ n: number }>`select 1 as n from pg_sleep(2.5)`.execute(db)
    expect(rows).toEqual([{ n: 1 }])
  }, 20_000)
})
