import type { Db } from '../platform/db.ts'
import { classifyLineError, type Line } from '../platform/line.ts'
import type { Logger } from '../platform/logger.ts'
import { TimeoutError } from '../platform/timeout.ts'
import { MAX_USERS_PER_LINK_CALL } from '../richmenu/richmenu-link.service.ts'
import { findLineUsersOfCustomer } from '../richmenu/richmenu-segment.repo.ts'
import { findCustomersToErase } from './linked-customers.repo.ts'

/**
 * What became of the per-user menus of a person about to be erased: `failed` ones stay shown at
 * LINE (until that menu is retired and deleted), `skipped` ones too (sandbox: no LINE here).
 */
export type ErasedMenus = {
  unlinked: number
  failed: number
  skipped: number
  /** LINE's status of the first failure, or 'timeout' / 'network'. */
  failure?: string
}

/**
 * Before eraseCustomer: unlinks at LINE the menu of each LINE user of the customers it erases
 * (the survivor of a merge chain and those account links proved the same person:
 * findCustomersToErase), linked or not as far as Kizuna knows, while their LINE user ids are
 * still known; the erasure then
 * replaces them with tombstones and clears the recorded menu. Never throws for LINE: the erasure
 * is a legal duty and goes ahead, the menu left at LINE being the lesser harm (logged without
 * the LINE user id). `line` undefined (sandbox mode): nothing is sent, the users count as
 * skipped. The rows keep their recorded menu until the erasure clears it, so a relink running
 * meanwhile sees no mismatch and links nothing back.
 */
export async function unlinkMenusBeforeErasure(
  deps: { db: Db; line: Line | undefined; log: Logger },
  customerId: string,
): Promise<ErasedMenus> {
  const result: ErasedMenus = { unlinked: 0, failed: 0, skipped: 0 }
  const ids = await findCustomersToErase(deps.db, customerId)
  if (!ids) return result
  const users: { id: string; line_uid: string }[] = []
  for (const id of ids) users.push(...(await findLineUsersOfCustomer(deps.db, id)))
  if (!deps.line) {
    result.skipped = users.length
    return result
  }
  const line = deps.line
  for (let i = 0; i < users.length; i += MAX_USERS_PER_LINK_CALL) {
    const userIds = users.slice(i, i + MAX_USERS_PER_LINK_CALL).map((u) => u.line_uid)
    const [one] = userIds
    try {
      await line.call('richmenu.unlink', (c) =>
        userIds.length === 1 && one
          ? c.unlinkRichMenuIdFromUser(one)
          : c.unlinkRichMenuIdFromUsers({ userIds }),
      )
      result.unlinked += userIds.length
    } catch (error) {
      // Only the status: a network error's text may quote the URL, which holds the user id.
      const failure = classifyLineError(error)
      const status = failure.status ?? (error instanceof TimeoutError ? 'timeout' : 'network')
      result.failed += userIds.length
      result.failure ??= String(status)
      deps.log.warn(
        { customerId: ids[0], users: userIds.length, status },
        'could not unlink the rich menu of a person being erased; the erasure goes ahead',
      )
    }
  }
  return result
}
