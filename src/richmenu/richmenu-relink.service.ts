import { tryWithTaskLock } from '../platform/task-lock.ts'
import {
  createLinkBatch,
  type LinkCounts,
  type LinkDeps,
  type LinkOptions,
  topTierOf,
} from './richmenu-link.service.ts'
import { oweRelink, readRelinkOwed, settleRelink } from './richmenu-relink.repo.ts'
import { findMismatchedFriends } from './richmenu-segment.repo.ts'
import { MAX_USERS_PER_LINK_CALL } from './richmenu-unlink.ts'

/** The relinks' task lock: on Postgres the advisory lock earlier versions waited for. */
const RELINK_TASK = 'kizuna.richmenu-relink'

export type RelinkCounts = LinkCounts & {
  pages: number
  /** Passes over the friends this call ran; 0: another relink was under way and runs one more. */
  passes: number
}

/**
 * Every friend whose linked menu is not the one of their segment, page by page (after a deploy,
 * a tier refresh, an import): users wanting the same menu are gathered into calls of 500. A pass
 * run to the end with every call taken settles the relink owed before it started
 * (richmenu_relink); a call LINE did not take throws first, so the relink stays owed.
 *
 * One relink runs at a time, in this process or another: one reading its pages while another's
 * calls were under way sent the same links again. Each deploy, import and tier refresh queues
 * one, and one that waited for another held one of the richmenu queue's two slots and a
 * connection meanwhile (the link jobs of new friends waited behind). So one that finds another
 * under way records a relink owed and returns at once; the one under way looks at the owed row
 * after each pass, and once more after it let the lock go, and runs another pass, which sees
 * whatever changed before it began. An owed relink stays owed until a pass begun after it ends:
 * if the one under way fails, its job's retry (or the next deploy, start or tier refresh) runs it.
 */
export async function relinkRichMenus(
  deps: LinkDeps,
  opts: Pick<LinkOptions, 'redeployLostMenus'> = {},
): Promise<RelinkCounts> {
  const total: RelinkCounts = { linked: 0, unlinked: 0, rejected: 0, calls: 0, pages: 0, passes: 0 }
  // This call's relink is owed in Postgres: a relink under way (or the next one) does it.
  let owed = false
  for (;;) {
    const run = await tryWithTaskLock(deps.db, RELINK_TASK, (db) =>
      relinkWhileOwed({ ...deps, db }, opts, total),
    )
    if (!run.ran) {
      if (owed) {
        deps.log.info('a rich menu relink is under way: it runs once more for this one')
        return total
      }
      await oweRelink(deps.db)
      owed = true
      // The relink under way may have ended before the row said so: try once more.
      continue
    }
    // Owed by a relink that found the lock held after this one's last look and before its unlock.
    if (!(await readRelinkOwed(deps.db)).owed) return total
    owed = true
  }
}

/** Passes, while a relink was owed after the last one began. */
async function relinkWhileOwed(
  deps: LinkDeps,
  opts: Pick<LinkOptions, 'redeployLostMenus'>,
  total: RelinkCounts,
): Promise<void> {
  do {
    const pass = await relinkPass(deps, opts)
    for (const key of ['linked', 'unlinked', 'rejected', 'calls', 'pages'] as const) {
      total[key] += pass[key]
    }
    total.passes++
  } while ((await readRelinkOwed(deps.db)).owed)
}

/** One pass over every friend; settles the relink owed before it began. */
async function relinkPass(
  deps: LinkDeps,
  opts: Pick<LinkOptions, 'redeployLostMenus'>,
): Promise<LinkCounts & { pages: number }> {
  const owed = await readRelinkOwed(deps.db)
  const topTier = topTierOf(deps.env)
  const batch = createLinkBatch(deps, opts)
  let afterId: string | null = null
  let pages = 0
  for (;;) {
    const page = await findMismatchedFriends(deps.db, {
      afterId,
      limit: MAX_USERS_PER_LINK_CALL,
      topTier,
    })
    pages++
    for (const row of page.rows) await batch.add(row)
    if (!page.nextAfterId) break
    afterId = page.nextAfterId
  }
  const counts = await batch.finish()
  await settleRelink(deps.db, owed)
  return { ...counts, pages }
}
