import { classifyLineError, type Line } from '../platform/line.ts'
import type { Logger } from '../platform/logger.ts'
import { TimeoutError } from '../platform/timeout.ts'

/** LINE's bulk link and unlink take 1..500 user ids (LINE-API.md §4). */
export const MAX_USERS_PER_LINK_CALL = 500

export type UnlinkOutcome = {
  unlinked: number
  /** Ids LINE refused one by one as invalid (400): it links no menu to them. */
  refused: number
  failed: number
  /** LINE's status of the first failure, or 'timeout' / 'network'. */
  failure?: string
  /** The LINE user ids done with: unlinked, or refused as invalid. */
  settled: string[]
}

type Call = { ok: true } | { ok: false; status: string; refused: boolean }

/**
 * Unlinks at LINE the menus of these LINE user ids, 500 a call (one id by the per-user
 * endpoint), for people whose rows no longer hold them (erased). LINE refuses a bulk call naming
 * a malformed id as a whole (400, no one unlinked): a bulk call refused (a 4xx other than 429)
 * is sent again one id at a time, so one bad id leaves no one else with the menu; an id LINE
 * refuses alone (400) counts as `refused` (no menu can be linked to it). A refusal of a single
 * call for another reason (401, 403: the channel, not the id) would refuse every one of them:
 * the rest are counted failed without a call. Never throws: a failure is logged as `message`
 * with the count and LINE's status only (a network error's text may quote the URL, which holds
 * the user id).
 */
export async function unlinkAtLine(
  deps: { line: Line; log: Logger },
  lineUids: string[],
  message: string,
): Promise<UnlinkOutcome> {
  const result: UnlinkOutcome = { unlinked: 0, refused: 0, failed: 0, settled: [] }
  const failed = (userIds: string[], status: string) => {
    result.failed += userIds.length
    result.failure ??= status
    deps.log.warn({ users: userIds.length, status }, message)
  }
  for (let i = 0; i < lineUids.length; i += MAX_USERS_PER_LINK_CALL) {
    const userIds = lineUids.slice(i, i + MAX_USERS_PER_LINK_CALL)
    if (userIds.length > 1) {
      const bulk = await unlinkCall(deps.line, userIds)
      if (bulk.ok) {
        result.unlinked += userIds.length
        result.settled.push(...userIds)
        continue
      }
      if (!bulk.refused) {
        failed(userIds, bulk.status)
        continue
      }
    }
    for (const [n, userId] of userIds.entries()) {
      const one = await unlinkCall(deps.line, [userId])
      if (one.ok) {
        result.unlinked += 1
        result.settled.push(userId)
      } else if (one.status === '400') {
        // LINE links no menu to an id it refuses as invalid: nothing to undo.
        result.refused += 1
        result.settled.push(userId)
        deps.log.warn({ users: 1, status: 400 }, 'LINE refused a LINE user id to unlink')
      } else {
        // Not about this id (5xx, 429, 401…): the others would fare the same now.
        failed(userIds.slice(n), one.status)
        break
      }
    }
  }
  return result
}

/** One unlink call (per-user for one id, bulk for more); `refused`: a 4xx other than 429. */
async function unlinkCall(line: Line, userIds: string[]): Promise<Call> {
  const [one] = userIds
  try {
    await line.call('richmenu.unlink', (c) =>
      userIds.length === 1 && one
        ? c.unlinkRichMenuIdFromUser(one)
        : c.unlinkRichMenuIdFromUsers({ userIds }),
    )
    return { ok: true }
  } catch (error) {
    const failure = classifyLineError(error)
    const status = failure.status ?? (error instanceof TimeoutError ? 'timeout' : 'network')
    return { ok: false, status: String(status), refused: failure.kind === 'rejected' }
  }
}
