import { sql, type Transaction } from 'kysely'
import { expect } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { lockInSpace } from '../../src/platform/advisory-locks.ts'
import type { Database, DB } from '../../src/platform/db.ts'
import { withTaskLock } from '../../src/platform/task-lock.ts'
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

/**
 * A run of the task `name` (withTaskLock) that goes on until `release()`; resolves once it
 * runs. `ended` settles when it has let the task go.
 */
export async function heldTask(
  db: Database,
  name: string,
): Promise<{ release: () => void; ended: Promise<void> }> {
  const running = Promise.withResolvers<void>()
  const released = Promise.withResolvers<void>()
  const ended = withTaskLock(db, name, async () => {
    running.resolve()
    await released.promise
  })
  await Promise.race([running.promise, ended])
  return { release: released.resolve, ended }
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

/** The Postgres backend (pg_stat_activity.pid) of the caller's transaction. */
export async function backendPid(trx: Transaction<DB>): Promise<number> {
  const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)
  return rows[0]?.pid ?? 0
}

/**
 * Waits until a connection waits for a lock backend `pid` holds: unlike lockWaitOn, not one
 * another test file's transactions wait for.
 */
export async function lockWaitFor(db: Database, pid: number): Promise<void> {
  await eventually(async () => expect(await waitersOf(db, pid)).toBeGreaterThan(0))
}

/** Takes a lock in the caller's transaction. */
export type TakeLock = (trx: Transaction<DB>) => Promise<unknown>

/** Locks the customer row (for update). */
export const customerLock =
  (id: string): TakeLock =>
  (trx) =>
    sql`select id from customer where id = ${id} for update`.execute(trx)

/**
 * Stands in for a transaction that takes two locks in the other order than the code under test
 * (`kizuna import customers` holding a customer, then wanting one the register holds): takes
 * `first`, and each time another connection waits for it, takes `second`, which that
 * connection's transaction already holds: a deadlock. This transaction looks for one
 * only after 60 s, so Postgres aborts the other one (which looks after 1 s); `second` is given
 * back (to a savepoint), `first` kept, for the next round. After `rounds` deadlocks (Infinity:
 * until `end()`) it rolls back: it writes nothing. `done` resolves to the deadlocks it caused.
 */
export async function deadlockingTransaction(
  db: Database,
  opts: { first: TakeLock; second: TakeLock; rounds?: number },
): Promise<{ end: () => void; done: Promise<number> }> {
  let ended = false
  let holding!: () => void
  const held = new Promise<void>((resolve) => {
    holding = resolve
  })
  class RolledBack extends Error {}
  let rounds = 0
  const done = db
    .transaction()
    .execute(async (trx) => {
      await sql`set local deadlock_timeout = '60s'`.execute(trx)
      const pid = await backendPid(trx)
      await opts.first(trx)
      holding()
      while (rounds < (opts.rounds ?? 1)) {
        if (!(await waitedFor(db, pid, () => ended))) break
        await sql`savepoint deadlocking`.execute(trx)
        await opts.second(trx) // granted once Postgres aborted the other transaction
        await sql`rollback to savepoint deadlocking`.execute(trx)
        rounds++
      }
      throw new RolledBack()
    })
    .catch((error: unknown) => {
      if (!(error instanceof RolledBack)) throw error
      return rounds
    })
  await Promise.race([held, done])
  return {
    end: () => {
      ended = true
    },
    done,
  }
}

/**
 * Waits until another connection waits for backend `pid`'s locks; false once `ended()`. Asked on
 * another connection: a transaction sees pg_stat_activity as it first read it.
 */
async function waitedFor(db: Database, pid: number, ended: () => boolean): Promise<boolean> {
  while (!ended()) {
    if ((await waitersOf(db, pid)) > 0) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return false
}

/** How many connections wait for backend `pid`'s locks (asked on another connection). */
async function waitersOf(db: Database, pid: number): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
    where ${pid}::int = any(pg_blocking_pids(pid))`.execute(db)
  return rows[0]?.n ?? 0
}

/**
 * Waits until a statement waits for backend `pid`'s locks, then until another one does (a new
 * statement: its own start time): the first gave up (a lock or statement timeout) and the work
 * was run again.
 */
export async function waitedForAgain(db: Database, pid: number): Promise<void> {
  const startsOf = async () => {
    const { rows } = await sql<{ started: string }>`select query_start::text as started
      from pg_stat_activity where ${pid}::int = any(pg_blocking_pids(pid))`.execute(db)
    return rows.map((r) => r.started)
  }
  const first = await eventually(async () => {
    const starts = await startsOf()
    expect(starts.length).toBeGreaterThan(0)
    return starts
  })
  await eventually(async () => {
    expect((await startsOf()).some((s) => !first.includes(s))).toBe(true)
  })
}

/**
 * Waits until `count` connections wait for backend `pid`'s locks, directly or behind another
 * connection that does (a queue of requests behind the first, which waits for `pid`).
 */
export async function lockWaitBehind(db: Database, pid: number, count: number): Promise<void> {
  await eventually(async () => {
    const { rows } = await sql<{ n: number }>`with recursive behind(pid) as (
        select pid from pg_stat_activity where ${pid}::int = any(pg_blocking_pids(pid))
        union
        select a.pid from pg_stat_activity a join behind b on b.pid = any(pg_blocking_pids(a.pid))
      ) select count(*)::int as n from behind`.execute(db)
    expect(rows[0]?.n).toBeGreaterThanOrEqual(count)
  })
}

/**
 * Sends `request` while a transaction holds the customer `merged` (as an account link does),
 * waits until the request waits for it (or has answered), then merges `merged` into `survivor`
 * there and commits; answers the request's answer.
 */
export async function racingMerge<T>(
  db: Database,
  ids: { survivor: string; merged: string },
  request: () => Promise<T>,
): Promise<T> {
  let linking!: Transaction<DB>
  let pid = 0
  const held = await heldTransaction(db, async (trx) => {
    linking = trx
    pid = await backendPid(trx)
    await customerLock(ids.merged)(trx)
  })
  const answer = request()
  await Promise.race([lockWaitFor(db, pid), answer])
  await mergeCustomers(linking, {
    survivorId: ids.survivor,
    mergedId: ids.merged,
    reason: 'account-link',
  })
  held.commit()
  await held.committed
  return answer
}

/**
 * Starts erasing `customerId` and pauses it once it holds the LINE users and the customer (as it
 * takes them, before any write of theirs): its consent write waits for a transaction of the
 * caller's, `pid`, until `release()`. `lockWaitBehind(db, pid, 2)` sees something else wait for
 * the erasure. `erasing` is the erasure's answer.
 */
export async function pausedErasure(db: Database, customerId: string) {
  let pid = 0
  const held = await heldTransaction(db, async (trx) => {
    pid = await backendPid(trx)
    await lockInSpace(trx, 'consent', customerId)
  })
  const erasing = eraseCustomer(db, customerId)
  await lockWaitFor(db, pid)
  return {
    pid,
    erasing,
    release: async () => {
      held.commit()
      await held.committed
    },
  }
}
