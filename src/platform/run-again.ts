import { setTimeout as sleep } from 'node:timers/promises'
import { isAbortedTransaction } from './errors.ts'

/** Times in all a transaction Postgres keeps aborting is run (runAgainIfAborted). */
export const ABORTED_RUNS = 3

/**
 * Runs `transaction` (a whole transaction, or one statement outside any) and, when Postgres
 * aborted it whole (isAbortedTransaction: a deadlock, a serialization failure) or it threw an
 * error `again` says means the same, runs it again, ABORTED_RUNS times in all, after a short
 * random pause (10–50 ms, then 20–100 ms: the two that deadlocked do not start again in step).
 * Nothing an aborted run did stayed, so `transaction` must do nothing outside the database:
 * jobs, LINE calls and metrics come after this returns. After the last run it throws
 * `busy(error)` (something the caller can act on: "busy, scan again"), or the error itself.
 */
export async function runAgainIfAborted<T>(
  transaction: () => Promise<T>,
  opts: { again?: (error: unknown) => boolean; busy?: (error: unknown) => Error } = {},
): Promise<T> {
  for (let run = 1; ; run++) {
    try {
      return await transaction()
    } catch (error) {
      if (!isAbortedTransaction(error) && !opts.again?.(error)) throw error
      if (run >= ABORTED_RUNS) throw opts.busy ? opts.busy(error) : error
      await sleep(run * (10 + Math.random() * 40))
    }
  }
}
