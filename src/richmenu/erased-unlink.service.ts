import { jobIds, MAX_RICHMENU_USERS_PER_JOB } from '../jobs.ts'
import type { Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { readByKeyset } from '../platform/keyset.ts'
import type { Line } from '../platform/line.ts'
import type { Logger } from '../platform/logger.ts'
import type { Queues } from '../platform/queues.ts'
import {
  type ClaimedUnlink,
  claimErasedUnlinks,
  deferErasedUnlinks,
  deleteErasedUnlinks,
  deleteErasedUnlinksBefore,
  listDueErasedUnlinks,
} from './erased-unlink.repo.ts'
import { forgetMenusOfLineUids } from './richmenu-segment.repo.ts'
import { type UnlinkOutcome, unlinkAtLine } from './richmenu-unlink.ts'

/**
 * How long an erased person's LINE user id is kept for the unlink of their menu at most, LINE
 * never confirming (a revoked token, a long outage): a month, the time an erasure request must
 * be answered in under the GDPR. Then it is dropped and the menu stays until it is retired.
 */
export const ERASED_UNLINK_MAX_AGE_MS = 30 * 86_400_000
/**
 * Rows a round takes at a time: their calls (a bulk one, then one each if LINE refuses it) are
 * over before the lease is, so no other round takes them meanwhile; the rows it has not reached
 * yet it does not hold.
 */
const CLAIM_SLICE = 50
/** How long a round holds a slice: 51 calls at LINE_TIMEOUT_MS's default 10 s, with room. */
const LEASE_SECONDS = 600
const FAILED = 'could not unlink the rich menu of an erased person; it is tried again later'

/**
 * What became of the menus: `failed` ones stay shown at LINE until a retry gets through;
 * `pending` ones were not taken (another attempt holds them, or their retry is not due yet).
 */
export type ErasedUnlinkOutcome = Omit<UnlinkOutcome, 'settled'> & { pending: number }

/** Who unlinks: with `queues`, the link of a friend back under an erased id is queued. */
export type ErasedUnlinkDeps = { db: Db; line: Line; log: Logger; queues?: Pick<Queues, 'enqueue'> }

/**
 * Unlinks at LINE the menus these rows name (insertErasedUnlinks), after the commit: after, not
 * before, since a link job that read a row before the erasure may have its call land at LINE
 * and be recorded until the erasure tombstones the row, and only an unlink sent after that is
 * sure to come last (a link recorded later fails its compare and is recorded here by
 * unlinkErased in richmenu-link.service.ts). A row LINE confirmed (or refused as an invalid id)
 * is deleted, the LINE user id with it. The others wait for a retry (the sweeper's, later each
 * time). Rows are taken CLAIM_SLICE at a time; those another call holds, or whose retry is not
 * due, are left as they are (`pending`). A row owed again while this call held it
 * (insertErasedUnlinks: a new generation) is left to the one that owes it, as this call's
 * unlink may have come before what made it owed. Never throws for LINE; logs counts and
 * statuses only.
 *
 * An id a live row holds again (the person followed again since) is unlinked too: the menu LINE
 * shows may be the erased person's, which the new friend's link job never replaces when it
 * wants the default menu (nothing recorded, nothing wanted: no call). Their record is then
 * forgotten (a link under way fails its record and links again) and their link queued (without
 * `queues`, the erase command: the nightly relink links them, or their next link).
 */
export async function unlinkErasedMenus(
  deps: ErasedUnlinkDeps,
  ids: string[],
): Promise<ErasedUnlinkOutcome> {
  const total: ErasedUnlinkOutcome = { unlinked: 0, refused: 0, failed: 0, pending: 0 }
  for (let i = 0; i < ids.length; i += CLAIM_SLICE) {
    const slice = ids.slice(i, i + CLAIM_SLICE)
    const claimed = await claimErasedUnlinks(deps.db, slice, LEASE_SECONDS)
    const outcome = await unlinkClaimed(deps, claimed, total.failure)
    total.unlinked += outcome.unlinked
    total.refused += outcome.refused
    total.failed += outcome.failed
    total.failure ??= outcome.failure
    total.pending += slice.length - claimed.length
  }
  return total
}

/**
 * One slice: unlinked at LINE, then done with or deferred. After LINE failed a call for a reason
 * not about the ids (`failedBefore`, its status), the rest would fare the same now: deferred
 * without a call.
 */
async function unlinkClaimed(
  deps: ErasedUnlinkDeps,
  claimed: ClaimedUnlink[],
  failedBefore: string | undefined,
): Promise<Omit<UnlinkOutcome, 'settled'>> {
  if (claimed.length === 0) return { unlinked: 0, refused: 0, failed: 0 }
  const uids = claimed.map((c) => c.line_uid)
  if (failedBefore) deps.log.warn({ users: uids.length, status: failedBefore }, FAILED)
  const { settled, ...outcome } = failedBefore
    ? { unlinked: 0, refused: 0, failed: uids.length, failure: failedBefore, settled: [] }
    : await unlinkAtLine(deps, uids, FAILED)
  // Before the rows go: a crash in between costs an unlink sent again, not a friend left without
  // their menu.
  await relinkReturning(deps, settled)
  const done = new Set(settled)
  await deleteErasedUnlinks(
    deps.db,
    claimed.filter((c) => done.has(c.line_uid)),
  )
  await deferErasedUnlinks(
    deps.db,
    claimed.filter((c) => !done.has(c.line_uid)),
    outcome.failure ?? 'unknown',
  )
  return outcome
}

/**
 * After the unlink of these LINE user ids: the friends back under one of them have their record
 * forgotten and their menu linked again (queued; a queue refusing it is logged, the nightly
 * relink links them).
 */
async function relinkReturning(deps: ErasedUnlinkDeps, lineUids: string[]): Promise<void> {
  const returning = await forgetMenusOfLineUids(deps.db, lineUids)
  if (returning.length === 0 || !deps.queues) return
  try {
    await deps.queues.enqueue(
      'richmenu.link-users',
      { lineUserIds: returning },
      { jobId: jobIds.richMenuLink(returning, `erased-unlink-${Date.now()}`) },
    )
  } catch (err) {
    deps.log.warn(
      { err, users: returning.length },
      'could not queue the rich menu link of friends back under an erased LINE user id',
    )
  }
}

/**
 * How often the sweeper may queue the same owed unlinks again: as long as a retry waits at most
 * (deferErasedUnlinks).
 */
const SWEEP_AGAIN_MS = 3_600_000

/**
 * The sweeper's part: drops the rows older than ERASED_UNLINK_MAX_AGE_MS (logged by count), and
 * queues the due ones (listDueErasedUnlinks: written before `cutoff`, or their retry is up), 500
 * a job, ids only. Returns how many were due.
 *
 * A job's id is its rows' state and the hour (jobIds.erasedUnlink), not the sweep: a sweep while
 * the last one's job still waits (a backlog in the queue) queues no second job for the same
 * rows, and once that job claimed them (their tries went up) the next sweep's job has an id of
 * its own, so a finished job never holds their retry back. A job that failed before its claim
 * (Postgres down through its attempts) left them as they were and is kept a week under its id:
 * the hour bounds that wait.
 */
export async function sweepErasedUnlinks(
  deps: Pick<Deps, 'db' | 'queues' | 'log' | 'clock'>,
  cutoff: Date,
  pages: { page: number; max: number },
): Promise<number> {
  const expired = await deleteErasedUnlinksBefore(
    deps.db,
    new Date(deps.clock.now().getTime() - ERASED_UNLINK_MAX_AGE_MS),
  )
  if (expired > 0) {
    deps.log.warn(
      { users: expired },
      'gave up unlinking the rich menus of erased people: LINE did not confirm within 30 days',
    )
  }
  const due = await readByKeyset(
    (after, limit) => listDueErasedUnlinks(deps.db, cutoff, limit, after),
    pages,
  )
  const cause = `sweep-${Math.floor(cutoff.getTime() / SWEEP_AGAIN_MS)}`
  for (let i = 0; i < due.length; i += MAX_RICHMENU_USERS_PER_JOB) {
    const rows = due.slice(i, i + MAX_RICHMENU_USERS_PER_JOB)
    await deps.queues.enqueue(
      'richmenu.unlink-erased',
      { unlinkIds: rows.map((r) => r.id) },
      { jobId: jobIds.erasedUnlink(rows, cause) },
    )
  }
  return due.length
}
