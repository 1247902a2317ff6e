import type { Env } from '../config/env.ts'
import { checkLineChannel, LineChannelMismatch } from '../line-channel/line-channel.service.ts'
import type { Database } from '../platform/db.ts'
import type { Line } from '../platform/line.ts'
import type { Logger } from '../platform/logger.ts'

/**
 * Before a command's first LINE call, as at start-up: the credentials' channel must be the one
 * the database serves (recorded now when it has none, logged). Another channel's throws,
 * naming both and `outcome` (what the command did not do). Returns why LINE did not say which
 * channel it is (unreachable, a 5xx, a timeout, a 401/403), for the command to decide, or null.
 */
export async function checkLineChannelBeforeCalls(
  db: Database,
  env: Env,
  line: Line,
  log: Logger,
  outcome: string,
): Promise<string | null> {
  const check = await checkLineChannel({ db, line }, { env, sandbox: false })
  if (check.kind === 'other') throw new LineChannelMismatch(check, { env, sandbox: false }, outcome)
  if (check.kind === 'unchecked') return check.why
  if (check.kind === 'recorded') {
    log.info(
      { botUserId: check.botUserId },
      'LINE channel recorded: this database serves it from now on',
    )
  }
  return null
}
