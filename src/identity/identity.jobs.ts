import { UnrecoverableError } from 'bullmq'
import { storableText } from '../platform/input.ts'
import { classifyLineError } from '../platform/line.ts'
import type { Processor } from '../platform/worker-types.ts'
import { fillCustomerName, findLineUserById, saveLineProfile } from './identity.repo.ts'

/** Fetches a friend's LINE profile (name, language, picture). A 404 means "not available". */
export const fetchProfile: Processor<'identity.fetch-profile'> = {
  async run(deps, { lineUserId }) {
    const lineUser = await findLineUserById(deps.db, lineUserId)
    if (!lineUser) throw new UnrecoverableError('LINE user row not found')
    try {
      const fetched = await deps.line.call('profile', (c) => c.getProfile(lineUser.line_uid))
      const profile = {
        displayName: storableText(fetched.displayName),
        language: storableText(fetched.language),
        pictureUrl: storableText(fetched.pictureUrl),
      }
      await saveLineProfile(deps.db, lineUser.id, profile)
      if (profile.displayName) {
        await fillCustomerName(deps.db, lineUser.customer_id, profile.displayName)
      }
    } catch (error) {
      const failure = classifyLineError(error)
      if (failure.kind === 'rejected' && failure.status === 404) {
        // Blocked or not a friend any more: events, not profiles, decide the status.
        await saveLineProfile(deps.db, lineUser.id, null)
        return
      }
      if (failure.kind === 'rejected') {
        throw new UnrecoverableError(`profile fetch rejected (${failure.status})`)
      }
      throw error
    }
  },
}
