import type { Deps } from '../platform/deps.ts'
import { classifyLineError, LINE_CALL_HELD } from '../platform/line.ts'
import {
  type ChannelCheck,
  type ChannelContext,
  checkLineChannel,
  LineChannelMismatch,
  SandboxNotRecorded,
} from './line-channel.service.ts'

/** The first check again after a start LINE did not answer; then twice as long each time. */
export const LINE_CHANNEL_RECHECK_MS = 60_000
/** The longest wait between two checks while LINE does not answer. */
const MOST_BETWEEN_CHECKS_MS = 10 * 60_000
/** A LINE call held while a check failed this recently fails as that check did, without asking. */
const FAILED_CHECK_HOLDS_MS = 5_000

/**
 * Start-up's check, one database, one LINE channel: the channel is recorded on a new database,
 * and another one's credentials stop start-up (LineChannelMismatch), before anything listens or
 * works. When LINE does not answer (an outage, a 5xx, a timeout, a 401/403), start-up goes on
 * (a LINE outage must not stop Kizuna) with a warning, and LINE calls wait for the check,
 * tried again in the background (the watch returned): one that then finds another channel calls
 * `onMismatch`.
 */
export async function checkLineChannelAtStart(
  deps: Pick<Deps, 'db' | 'line' | 'log'>,
  ctx: ChannelContext,
  opts: {
    recheckMs?: number
    onMismatch: (error: LineChannelMismatch) => void
    /** Migrations start-up applied before this check (none when the check came first). */
    migrationsApplied?: number
  },
): Promise<ChannelWatch | undefined> {
  const check = await checkLineChannel(deps, ctx)
  const outcome = `Kizuna will not start. ${changedNothingBut(opts.migrationsApplied ?? 0)}`
  switch (check.kind) {
    case 'same':
      return undefined
    case 'recorded':
      deps.log.info(
        { botUserId: check.botUserId },
        'LINE channel recorded: this database serves it from now on',
      )
      return undefined
    case 'other':
      throw new LineChannelMismatch(check, ctx, outcome)
    case 'sandbox_not_recorded':
      throw new SandboxNotRecorded(ctx, outcome)
    case 'unchecked': {
      const firstDelayMs = opts.recheckMs ?? LINE_CHANNEL_RECHECK_MS
      deps.log.warn(
        `could not check which LINE channel this is (${check.why}): starting all the same. ` +
          'No call goes to LINE until it is checked: before each one, and in the background ' +
          `(in ${Math.round(firstDelayMs / 1000)} s, then less often) until LINE answers; ` +
          'another channel than the one this database serves then stops Kizuna',
      )
      return watchLineChannel(deps, ctx, { onMismatch: opts.onMismatch, firstDelayMs })
    }
  }
}

/** What a refusal at start left as it was: all, or all but the migrations applied before. */
function changedNothingBut(migrationsApplied: number): string {
  if (migrationsApplied === 0) return 'Nothing was sent to LINE or changed in the database.'
  const them =
    migrationsApplied === 1
      ? '1 database migration of this checkout was'
      : `${migrationsApplied} database migrations of this checkout were`
  return (
    `Nothing was sent to LINE. ${them} applied first (the database had no table recording its ` +
    'LINE channel yet, so the channel was checked after them); nothing else changed in it.'
  )
}

/** A LINE call not made: the channel's check has not had LINE's answer yet (see LINE_CALL_HELD). */
export class LineChannelUnchecked extends Error {
  override name = 'LineChannelUnchecked'
  readonly code = LINE_CALL_HELD
}

export type ChannelWatch = { stop(): void }

/**
 * After a start whose channel check LINE did not answer (unreachable, a 5xx, a timeout, a
 * 401/403): Kizuna runs (a LINE outage must not stop it), but no call goes to LINE until the
 * channel is known. Every LINE call and send first has the channel checked (one check at a
 * time; a failed one answers the calls of the next 5 s), failing unsent while LINE does not say
 * (as LINE's own 401/403 when that is its answer, else as a call that never connected), so a
 * delivery waits with its retry key unused. The check is also tried on its own, 1 minute after
 * the start, then twice as long each time up to every 10 minutes, warning each time, so a
 * process with nothing to send finds out too. Once LINE says the same channel (or the first
 * one, now recorded), calls go ahead unheld. Another channel's: `onMismatch` (once), and every
 * call is refused from then on.
 */
export function watchLineChannel(
  deps: Pick<Deps, 'db' | 'line' | 'log'>,
  ctx: ChannelContext,
  opts: {
    onMismatch: (error: LineChannelMismatch) => void
    firstDelayMs?: number
    now?: () => number
  },
): ChannelWatch {
  const now = opts.now ?? Date.now
  let stopped = false
  let mismatch: LineChannelMismatch | null = null
  let failed: { at: number; why: string; error: Error } | null = null
  let checking: Promise<void> | null = null
  let timer: NodeJS.Timeout | undefined
  let delayMs = opts.firstDelayMs ?? LINE_CHANNEL_RECHECK_MS

  const settle = () => {
    clearTimeout(timer)
    deps.line.holdUntil(mismatch ? refuse : null)
  }
  const refuse = async () => {
    throw mismatch
  }
  const check = (): Promise<void> => {
    checking ??= (async () => {
      let result: ChannelCheck
      try {
        result = await checkLineChannel(deps, ctx)
      } catch (err) {
        // The database did not answer: tried again, as when LINE does not.
        const why = `the database did not answer: ${err instanceof Error ? err.message : err}`
        failed = { at: now(), why, error: unchecked(why) }
        return
      }
      if (stopped) return
      if (result.kind === 'sandbox_not_recorded') {
        const error = new SandboxNotRecorded(ctx, 'LINE calls wait.')
        failed = { at: now(), why: error.message, error }
        return
      }
      if (result.kind === 'unchecked') {
        // LINE's own refusal (a 401/403) is the calls' error too: they are handled as refused.
        const refused = classifyLineError(result.cause).kind === 'channel_refused'
        const error =
          refused && result.cause instanceof Error ? result.cause : unchecked(result.why)
        failed = { at: now(), why: result.why, error }
        return
      }
      failed = null
      if (result.kind === 'other') {
        mismatch = new LineChannelMismatch(
          result,
          ctx,
          'Kizuna stops: its workers first, then the process. No call went to LINE while the ' +
            'channel was unchecked.',
        )
        settle()
        opts.onMismatch(mismatch)
        return
      }
      deps.log.info(
        { botUserId: result.botUserId },
        result.kind === 'recorded'
          ? 'LINE channel checked and recorded: this database serves it from now on; LINE calls go ahead'
          : 'LINE channel checked: the one this database serves; LINE calls go ahead',
      )
      settle()
    })().finally(() => {
      checking = null
    })
    return checking
  }
  const gate = async () => {
    if (mismatch) throw mismatch
    if (!failed || now() - failed.at >= FAILED_CHECK_HOLDS_MS) await check()
    if (mismatch) throw mismatch
    if (failed) throw failed.error
  }
  const schedule = () => {
    timer = setTimeout(async () => {
      await check()
      if (stopped || mismatch || !failed) return
      delayMs = Math.min(delayMs * 2, MOST_BETWEEN_CHECKS_MS)
      deps.log.warn(
        `the LINE channel still could not be checked (${failed.why}): LINE calls wait for ` +
          `it; checking again in ${Math.round(delayMs / 1000)} s`,
      )
      schedule()
    }, delayMs)
    timer.unref()
  }
  deps.line.holdUntil(gate)
  schedule()
  return {
    stop() {
      stopped = true
      clearTimeout(timer)
    },
  }
}

function unchecked(why: string): LineChannelUnchecked {
  return new LineChannelUnchecked(`the LINE channel is not checked yet (${why}): call held`)
}
