import { UnrecoverableError } from 'bullmq'
import type { Deps } from '../platform/deps.ts'
import { storableText } from '../platform/input.ts'
import { classifyLineError } from '../platform/line.ts'
import { withTimeout } from '../platform/timeout.ts'
import {
  fillCustomerName,
  findProfilelessFriendOf,
  lockLineUid,
  saveLineProfile,
} from './identity.repo.ts'

type ProfileDeps = Pick<Deps, 'db' | 'line'>

/**
 * Fetches a LINE user's profile (name, language, picture) and saves it; the customer takes the
 * name if they have none. A 404 means "not available": saved as fetched, with nothing, unless
 * the row's status changed during the call (`lineUser` is the row as read before it). Outside
 * any transaction: the LINE call must not hold a connection (embedded PGlite has one).
 */
export async function fetchLineProfile(
  deps: ProfileDeps,
  lineUser: { id: string; line_uid: string; status_changed_at: Date },
): Promise<void> {
  try {
    const fetched = await deps.line.call('profile', (c) => c.getProfile(lineUser.line_uid))
    const profile = {
      displayName: storableText(fetched.displayName),
      language: storableText(fetched.language),
      pictureUrl: storableText(fetched.pictureUrl),
    }
    // The call took a while: the person may have been erased (nothing is saved then) or their
    // LINE account moved to another customer (an unlink) meanwhile; the name goes to the
    // customer the row has now, never to an erased one.
    // Together: saved as fetched without the name, a worker stopping in between left the
    // customer nameless for good (a fetched profile is not fetched again). The LINE user is
    // locked first, as by every writer of it: an erasure holds it and the customer, then
    // updates the row; taken row first and customer then, the save and the erasure deadlocked.
    await deps.db.transaction().execute(async (trx) => {
      await lockLineUid(trx, lineUser.line_uid)
      const customerId = await saveLineProfile(trx, lineUser, profile)
      if (customerId && profile.displayName) {
        await fillCustomerName(trx, customerId, profile.displayName)
      }
    })
  } catch (error) {
    const failure = classifyLineError(error)
    if (failure.kind === 'rejected' && failure.status === 404) {
      // Blocked or not a friend any more: events, not profiles, decide the status.
      await saveLineProfile(deps.db, lineUser, null)
      return
    }
    if (failure.kind === 'rejected' || failure.kind === 'channel_refused') {
      throw new UnrecoverableError(`profile fetch rejected (${failure.status})`)
    }
    throw error
  }
}

/** How long a welcome card waits for its friend's name: well inside the reply token's minute. */
export const WELCOME_PROFILE_WAIT_MS = 2_000

/**
 * Before a welcome card is rendered: the profile of the customer's LINE friend whose profile was
 * never fetched, so the card greets them by name. The profile job is queued beside the welcome
 * and often loses the race (always on embedded PGlite); this fetch saves what the job would, so
 * the job finds it done. Bounded: after `waitMs` (or on any failure) the card goes without the
 * name, and the fetch still under way, or the job, saves it for later.
 */
export async function fetchWelcomeProfile(
  deps: ProfileDeps & Pick<Deps, 'log'>,
  customerId: string,
  waitMs = WELCOME_PROFILE_WAIT_MS,
): Promise<void> {
  const lineUser = await findProfilelessFriendOf(deps.db, customerId)
  if (!lineUser) return
  const fetching = fetchLineProfile(deps, lineUser)
  try {
    await withTimeout(fetching, waitMs, 'welcome profile')
  } catch (error) {
    // The job retries a failed fetch; the card does not wait for it.
    fetching.catch(() => {})
    // The row's id: `lineUserId` is redacted (the logger takes it for a LINE user id).
    deps.log.warn(
      { err: error, lineUserRowId: lineUser.id },
      'welcome card sent without the profile',
    )
  }
}
