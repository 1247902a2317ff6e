import { isConnectionError, isRunAgainError } from '../../platform/errors.ts'
import { summary, type Tally } from './progress.ts'

/**
 * The import stopped while the rows from `line` on were written, by what no row causes: Postgres
 * went away or cannot write (read-only) above all, or kept giving up on them (a deadlock, a lock
 * or statement timeout, after the last run). Says what was saved before, and that importing the
 * file again picks up the rest. Those rows were not saved, or not all (a commit whose answer was
 * lost), so no number is given for them; `reported`: the bad rows counted and reported, those
 * before `line` only. `what`: the file's rows as the import names them (orders, products).
 */
export function stoppedAt(
  line: number,
  cause: unknown,
  counts: { what: string; saved: Tally; reported: Tally },
): Error {
  const detail = cause instanceof Error ? cause.message : String(cause)
  const { what, saved, reported } = counts
  const [why, when] = isConnectionError(cause)
    ? ['Postgres (DATABASE_URL) went away or cannot write: ', 'once Postgres is back']
    : isRunAgainError(cause)
      ? [
          'Postgres kept giving up on them (a deadlock, or a lock or statement timeout: another ' +
            'task holding the same rows): ',
          'in a while',
        ]
      : ['', 'once that is fixed']
  return new Error(
    `the import stopped at line ${line}: ${why}${detail}. ` +
      `Saved before line ${line}: ${summary(saved)} (${summary(reported)}: reported above); ` +
      `the ${what} from line ${line} on are not saved, or not all. Import the file again ` +
      `${when}: the ${what} saved are then counted unchanged`,
  )
}
