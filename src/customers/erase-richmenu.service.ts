import type { Line } from '../platform/line.ts'
import {
  type ErasedUnlinkDeps,
  type ErasedUnlinkOutcome,
  unlinkErasedMenus,
} from '../richmenu/erased-unlink.service.ts'

/**
 * What became of the per-user menus of an erased person: `failed` ones stay shown at LINE until
 * the sweeper's retry gets through, `pending` ones until another attempt's does, `skipped` ones
 * until the sandbox's sweeper's (no LINE here).
 */
export type ErasedMenus = ErasedUnlinkOutcome & { skipped: number }

/**
 * After eraseCustomer committed: unlinks at LINE the menu of each LINE user it erased (its
 * `menuUnlinks`, the rows holding their LINE user ids until LINE confirms), linked or not as far
 * as Kizuna knew (unlinkErasedMenus). Never throws for LINE: the erasure is done, and what LINE
 * did not confirm waits for the sweeper. `line` undefined (sandbox mode): nothing is sent, the
 * users count as skipped, their rows left to the sandbox's own worker.
 */
export async function unlinkMenusAfterErasure(
  deps: Omit<ErasedUnlinkDeps, 'line'> & { line: Line | undefined },
  menuUnlinks: string[],
): Promise<ErasedMenus> {
  const { line } = deps
  if (!line) {
    return { unlinked: 0, refused: 0, failed: 0, pending: 0, skipped: menuUnlinks.length }
  }
  return { ...(await unlinkErasedMenus({ ...deps, line }, menuUnlinks)), skipped: 0 }
}
