import { sql, type Transaction } from 'kysely'
import { expect } from 'vitest'
import type { Database, DB } from '../../src/platform/db.ts'
import { eventually } from './wait.ts'

/**
 * Runs `work` in a transaction and keeps it open, with its locks, until `commit()` is called;
 * resolves once `work` is done. `committed` settles when the transaction has ended.
 */
export async function heldTransaction(
  db: Database,
  work: (trx: Transaction<DB>) => Promise<void>,
): Promise<{ commit: () => void; committed: Promise<void> }> {
  let commit!: () => void
  const held = new Promise<void>((resolve) => {
    commit = resolve
  })
  let worked!: () => void
  const done = new Promise<void>((resolve) => {
    worked = resolve
  })
  const committed = db.transaction().execute(async (trx) => {
    await work(trx)
    worked()
    await held
  })
  await Promise.race([done, committed])
  return { commit, committed }
}

/** Waits until `count` statements of this database that name `table` are waiting on a lock. */
export async function lockWaitOn(db: Database, table: string, count = 1): Promise<void> {
  await eventually(async () => {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'
        and query like ${`%${table}%`}`.execute(db)
    expect(rows[0]?.n).toBeGreaterThanOrEqual(count)
  })
}
