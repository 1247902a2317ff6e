import { UnrecoverableError } from 'bullmq'
import type { Processor } from '../platform/worker-types.ts'
import { findLineUserById } from './identity.repo.ts'
import { fetchLineProfile } from './profile.service.ts'
import { TOMBSTONE } from './tombstone.ts'

/** Fetches a friend's LINE profile (name, language, picture). A 404 means "not available". */
export const fetchProfile: Processor<'identity.fetch-profile'> = {
  async run(deps, { lineUserId }, ctx) {
    const lineUser = await findLineUserById(deps.db, lineUserId)
    if (!lineUser) throw new UnrecoverableError('LINE user row not found')
    // Erased after the event that queued this job: the row holds a tombstone, no LINE user id.
    if (lineUser.line_uid.startsWith(TOMBSTONE)) return
    // Fetched since this job was asked for (a welcome card fetches it first): done, no second
    // call. An older fetch (an unblock asks for a fresh one) does not count.
    const fetchedAt = lineUser.profile_fetched_at?.getTime()
    if (fetchedAt !== undefined && ctx?.job && fetchedAt >= ctx.job.timestamp) return
    await fetchLineProfile(deps, lineUser)
  },
}
