import { jobIds, MAX_RICHMENU_USERS_PER_JOB } from '../jobs.ts'
import type { Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { readByKeyset } from '../platform/keyset.ts'
import type { Line } from '../platform/line.ts'
import type { Logger } from '../platform/logger.ts'
import type { Queues } from '../platform/queues.ts'
import {
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
/** How long one unlink attempt holds its rows: well over a call's timeout, 500 calls paced. */
const LEASE_SECONDS = 300

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
 * time). Rows another call holds, or whose retry is not due, are left as they are (`pending`); a
 * row owed again while this call held it (insertErasedUnlinks: a new generation) is left to the
 * one that owes it, as this call's unlink may have come before what made it owed. Never throws
 * for LINE; logs counts and statuses only.
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
  const claimed = await claimErasedUnlinks(deps.db, ids, LEASE_SECONDS)
  const { settled, ...outcome } = await unlinkAtLine(
    deps,
    claimed.map((c) => c.line_uid),
    'could not unlink the rich menu of an erased person; it is tried again later',
  )
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
  return { ...outcome, pending: ids.length - claimed.length }
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
 * The sweeper's part: drops the rows older than ERASED_UNLINK_MAX_AGE_MS (logged by count), and
 * queues the due ones (listDueErasedUnlinks: written before `cutoff`, or their retry is up), 500
 * a job, ids only. Returns how many were due.
 */
export async function sweepErasedUnlinks(
  deps: Pick<Deps, 'db' | 'queues' | 'log' | 'clock'>,
  cutoff: Date,
  cause: string,
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
  for (let i = 0; i < due.length; i += MAX_RICHMENU_USERS_PER_JOB) {
    const unlinkIds = due.slice(i, i + MAX_RICHMENU_USERS_PER_JOB).map((r) => r.id)
    await deps.queues.enqueue(
      'richmenu.unlink-erased',
      { unlinkIds },
      { jobId: jobIds.erasedUnlink(unlinkIds, cause) },
    )
  }
  return due.length
}
