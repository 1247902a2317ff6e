import { classifyLineError } from '../platform/line.ts'
import { TimeoutError } from '../platform/timeout.ts'

/** What one LINE call (bulk, or per-user for one id) answered. */
export type CallAnswer =
  | { ok: true }
  /**
   * `splittable`: a refusal one of its user ids may have caused (a 4xx other than 429). `error`:
   * what the call threw (LINE's refusal, a 429 or 5xx, a timeout, a network error).
   */
  | { ok: false; status: string; splittable: boolean; error: unknown }

/** A refusal LINE answered (a 4xx other than 429): its status and LINE's message. */
export type Refusal = { status: number; message: string }

/**
 * Makes one LINE call and says what it answered. A refusal is `splittable` unless `onRefusal`
 * (which may log it) says it is about something none of the call's users can change; a failure
 * keeps its `error`, its status LINE's or else 'timeout' or 'network'.
 */
export async function answerOf(
  call: () => Promise<unknown>,
  onRefusal: (refusal: Refusal) => boolean = () => true,
): Promise<CallAnswer> {
  try {
    await call()
    return { ok: true }
  } catch (error) {
    const failure = classifyLineError(error)
    const status = String(failure.status ?? (error instanceof TimeoutError ? 'timeout' : 'network'))
    if (
      failure.kind === 'rejected' ||
      failure.kind === 'channel_refused' ||
      failure.kind === 'invalid_reply_token'
    ) {
      return { ok: false, status, splittable: onRefusal(failure), error }
    }
    return { ok: false, status, splittable: false, error }
  }
}

export type SplitOutcome<T> = {
  /** The users LINE accepted; `whole`: in one bulk call for them all. */
  accepted: T[]
  whole: boolean
  /** Users LINE refused alone (400): their id is not one LINE knows, nothing is linked to it. */
  refused: T[]
  /**
   * Users not accepted for another reason (`failure`, LINE's status of the first; `error`, what
   * it threw): a refusal not of one user id (the menu's, the channel's), a 429, a 5xx, a timeout.
   */
  failed: T[]
  failure?: string
  error?: unknown
}

/**
 * One call for these users (up to 500: MAX_USERS_PER_LINK_CALL). LINE refuses a bulk link or
 * unlink naming a malformed user id as a whole (400 naming userIds[i], no one linked): a bulk
 * call refused (`splittable`) is made again one user at a time, so one bad id leaves no one
 * else with the wrong menu; a user LINE refuses alone (400) is `refused`. A refusal of a single
 * call for another reason (401, 403, 429, 5xx: the channel or LINE, not the id) would refuse the
 * rest too: they are `failed` without a call. Throws only what `call` throws.
 */
export async function callSplittingRefusals<T>(
  users: T[],
  call: (users: T[]) => Promise<CallAnswer>,
): Promise<SplitOutcome<T>> {
  const outcome: SplitOutcome<T> = { accepted: [], whole: false, refused: [], failed: [] }
  if (users.length > 1) {
    const bulk = await call(users)
    if (bulk.ok) return { ...outcome, accepted: users, whole: true }
    if (!bulk.splittable) {
      return { ...outcome, failed: users, failure: bulk.status, error: bulk.error }
    }
  }
  for (const [n, user] of users.entries()) {
    const one = await call([user])
    if (one.ok) outcome.accepted.push(user)
    else if (one.status === '400' && one.splittable) outcome.refused.push(user)
    else {
      outcome.failed = users.slice(n)
      outcome.failure = one.status
      outcome.error = one.error
      break
    }
  }
  return outcome
}
