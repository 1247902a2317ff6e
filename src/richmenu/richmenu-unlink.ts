import type { Line } from '../platform/line.ts'
import type { Logger } from '../platform/logger.ts'
import {
  answerOf,
  type CallAnswer,
  callSplittingRefusals,
  type Refusal,
} from './richmenu-bulk-call.ts'

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

/**
 * Unlinks at LINE the menus of these LINE user ids, 500 a call (one id by the per-user
 * endpoint), for erased people's ids (and friends back under one: erased-unlink.service.ts). A bulk call LINE refuses for
 * one malformed id is made again one id at a time (callSplittingRefusals); an id LINE refuses
 * alone counts as `refused` (no menu can be linked to it). Never throws: a failure is logged as
 * `message` with the count and LINE's status only (a network error's text may quote the URL,
 * which holds the user id).
 */
export async function unlinkAtLine(
  deps: { line: Line; log: Logger },
  lineUids: string[],
  message: string,
): Promise<UnlinkOutcome> {
  const result: UnlinkOutcome = { unlinked: 0, refused: 0, failed: 0, settled: [] }
  for (let i = 0; i < lineUids.length; i += MAX_USERS_PER_LINK_CALL) {
    const userIds = lineUids.slice(i, i + MAX_USERS_PER_LINK_CALL)
    const outcome = await callSplittingRefusals(userIds, (ids) => unlinkCall(deps.line, ids))
    result.unlinked += outcome.accepted.length
    // LINE links no menu to an id it refuses as invalid: nothing to undo.
    result.refused += outcome.refused.length
    result.settled.push(...outcome.accepted, ...outcome.refused)
    if (outcome.refused.length > 0) {
      deps.log.warn(
        { users: outcome.refused.length, status: 400 },
        'LINE refused a LINE user id to unlink',
      )
    }
    if (outcome.failure) {
      result.failed += outcome.failed.length
      result.failure ??= outcome.failure
      deps.log.warn({ users: outcome.failed.length, status: outcome.failure }, message)
    }
  }
  return result
}

/**
 * One unlink call (per-user for one id, bulk for more), for erased people's ids and for the
 * link jobs' users who want no menu (richmenu-link.service.ts): see answerOf.
 */
export function unlinkCall(
  line: Line,
  userIds: string[],
  onRefusal?: (refusal: Refusal) => boolean,
): Promise<CallAnswer> {
  const [one] = userIds
  return answerOf(
    () =>
      line.call('richmenu.unlink', (c) =>
        userIds.length === 1 && one
          ? c.unlinkRichMenuIdFromUser(one)
          : c.unlinkRichMenuIdFromUsers({ userIds }),
      ),
    onRefusal,
  )
}
