import { classifyLineError, type Line } from '../platform/line.ts'
import type { Logger } from '../platform/logger.ts'
import { TimeoutError } from '../platform/timeout.ts'

/** LINE's bulk link and unlink take 1..500 user ids (LINE-API.md §4). */
export const MAX_USERS_PER_LINK_CALL = 500

export type UnlinkOutcome = {
  unlinked: number
  failed: number
  /** LINE's status of the first failure, or 'timeout' / 'network'. */
  failure?: string
}

/**
 * Unlinks at LINE the menus of these LINE user ids, 500 a call (one id by the per-user
 * endpoint), for people whose rows no longer hold them (erased). Never throws: a failure is
 * logged as `message` with the count and LINE's status only (a network error's text may quote
 * the URL, which holds the user id), the menu staying shown until it is retired.
 */
export async function unlinkAtLine(
  deps: { line: Line; log: Logger },
  lineUids: string[],
  message: string,
): Promise<UnlinkOutcome> {
  const result: UnlinkOutcome = { unlinked: 0, failed: 0 }
  for (let i = 0; i < lineUids.length; i += MAX_USERS_PER_LINK_CALL) {
    const userIds = lineUids.slice(i, i + MAX_USERS_PER_LINK_CALL)
    const [one] = userIds
    try {
      await deps.line.call('richmenu.unlink', (c) =>
        userIds.length === 1 && one
          ? c.unlinkRichMenuIdFromUser(one)
          : c.unlinkRichMenuIdFromUsers({ userIds }),
      )
      result.unlinked += userIds.length
    } catch (error) {
      const status =
        classifyLineError(error).status ?? (error instanceof TimeoutError ? 'timeout' : 'network')
      result.failed += userIds.length
      result.failure ??= String(status)
      deps.log.warn({ users: userIds.length, status }, message)
    }
  }
  return result
}
