import type { Db } from '../platform/db.ts'
import { lockLineUid } from './identity.repo.ts'

/**
 * Takes, in the caller's transaction, the locks the webhook worker holds while it applies an
 * event of one of these LINE users (a follow, an unfollow, a message), in a fixed order: their
 * events wait until the caller commits, and find the users as the caller left them.
 */
export async function lockLineUsers(trx: Db, lineUids: readonly string[]): Promise<void> {
  for (const lineUid of [...new Set(lineUids)].sort()) await lockLineUid(trx, lineUid)
}
