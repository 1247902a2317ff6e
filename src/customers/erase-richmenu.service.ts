import type { Db } from '../platform/db.ts'
import type { Line } from '../platform/line.ts'
import type { Logger } from '../platform/logger.ts'
import { findLiveLineUids } from '../richmenu/richmenu-segment.repo.ts'
import { type UnlinkOutcome, unlinkAtLine } from '../richmenu/richmenu-unlink.ts'

/**
 * What became of the per-user menus of an erased person: `failed` ones stay shown at LINE
 * (until that menu is retired and deleted), `skipped` ones too (sandbox: no LINE here).
 */
export type ErasedMenus = Omit<UnlinkOutcome, 'settled'> & { skipped: number }

/**
 * After eraseCustomer committed: unlinks at LINE the menu of each LINE user it erased (its
 * `lineUids`, the ids as they were before the tombstones), linked or not as far as Kizuna knew.
 * After the commit, not before: a link job that read a row before the erasure may have its
 * call land at LINE and be recorded until the erasure tombstones the row, and only an unlink
 * sent after that is sure to come last (a link recorded later fails its compare and is taken
 * back by unlinkErased in richmenu-link.service.ts). Never throws for LINE: the erasure is done,
 * the menu left at LINE being the lesser harm (logged without the LINE user id). A LINE user id
 * a live row holds again (the person followed again since the commit) is left alone: its menu
 * is the new friend's. `line` undefined (sandbox mode): nothing is sent, the users count as
 * skipped.
 */
export async function unlinkMenusAfterErasure(
  deps: { db: Db; line: Line | undefined; log: Logger },
  lineUids: string[],
): Promise<ErasedMenus> {
  if (!deps.line) return { unlinked: 0, refused: 0, failed: 0, skipped: lineUids.length }
  const live = new Set(await findLiveLineUids(deps.db, lineUids))
  const { settled: _, ...outcome } = await unlinkAtLine(
    { line: deps.line, log: deps.log },
    lineUids.filter((uid) => !live.has(uid)),
    'could not unlink the rich menu of an erased person; the erasure is done',
  )
  return { ...outcome, skipped: 0 }
}
