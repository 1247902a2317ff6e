import { expect } from 'vitest'
import type { Database } from '../../src/platform/db.ts'
import { cli } from './cli.ts'
import { TEST_DATABASE_URL } from './env.ts'
import { startDatabaseProxy } from './frozen-proxy.ts'
import { backendPid, heldTransaction, lockWaitFor, type TakeLock, waitedForAgain } from './locks.ts'

type CliResult = Awaited<ReturnType<typeof cli>>

/**
 * `kizuna <args>` on connections Postgres keeps read-only, as a client still connected to a
 * primary that failed over sees it: every write fails with SQLSTATE 25006.
 */
export const cliReadOnly = (args: string[], env: Record<string, string> = {}) =>
  cli(args, { ...env, PGOPTIONS: '-c default_transaction_read_only=on' })

/**
 * `kizuna <args>` through a proxy that cuts Postgres off (as a server gone down) once the
 * command waits for `lock`, which the test holds meanwhile.
 */
export async function cliCutOffWhileWaiting(
  db: Database,
  args: string[],
  lock: TakeLock,
): Promise<CliResult> {
  const proxy = await startDatabaseProxy(TEST_DATABASE_URL)
  let holder = 0
  const held = await heldTransaction(db, async (trx) => {
    holder = await backendPid(trx)
    await lock(trx)
  })
  try {
    const running = cli(args, { DATABASE_URL: proxy.url })
    await lockWaitFor(db, holder)
    proxy.cut()
    return await running
  } finally {
    held.commit()
    await held.committed
    await proxy.close()
  }
}

/**
 * `kizuna <args>` with a lock_timeout of 500 ms, while the test holds `lock` until the command
 * waited for it, timed out, and waits for it again (it ran the work again): then it is let go.
 */
export async function cliTimingOutOnce(
  db: Database,
  args: string[],
  lock: TakeLock,
): Promise<CliResult> {
  let holder = 0
  const held = await heldTransaction(db, async (trx) => {
    holder = await backendPid(trx)
    await lock(trx)
  })
  const running = cli(args, { PGOPTIONS: '-c lock_timeout=500ms' })
  try {
    await waitedForAgain(db, holder)
  } finally {
    held.commit()
    await held.committed
  }
  return running
}

/**
 * The import stopped (exit 1) at `line` because Postgres went away or cannot write, and said
 * what it saved before that line (`saved`, from "created …").
 */
export function expectStoppedAt(result: CliResult, line: number, saved: string): void {
  expect(result.code, result.stderr).toBe(1)
  expect(result.stderr).toContain(
    `error: the import stopped at line ${line}: Postgres (DATABASE_URL) went away or cannot write: `,
  )
  expect(result.stderr).toContain(`Saved before line ${line}: ${saved}`)
}
