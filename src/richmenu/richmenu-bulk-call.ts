/** What one LINE call (bulk, or per-user for one id) answered. */
export type CallAnswer =
  | { ok: true }
  /** `splittable`: a refusal one of its user ids may have caused (a 4xx other than 429). */
  | { ok: false; status: string; splittable: boolean }

export type SplitOutcome<T> = {
  /** The users LINE accepted; `whole`: in one bulk call for them all. */
  accepted: T[]
  whole: boolean
  /** Users LINE refused alone (400): their id is not one LINE knows, nothing is linked to it. */
  refused: T[]
  /** Users not accepted for another reason (`failure`, LINE's status of the first). */
  failed: T[]
  failure?: string
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
    if (!bulk.splittable) return { ...outcome, failed: users, failure: bulk.status }
  }
  for (const [n, user] of users.entries()) {
    const one = await call([user])
    if (one.ok) outcome.accepted.push(user)
    else if (one.status === '400' && one.splittable) outcome.refused.push(user)
    else {
      outcome.failed = users.slice(n)
      outcome.failure = one.status
      break
    }
  }
  return outcome
}
