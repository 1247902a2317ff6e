import { sql } from 'kysely'
import { consentGrantedSql } from '../consent/consent.service.ts'
import type { Db } from '../platform/db.ts'
import { type Claim, lineFriendOf, markHeldUnlessErased } from './delivery-claim.repo.ts'

/**
 * Why a claimed email must not go after all, found as it is about to: the person follows the
 * account now (`line_friend`: LINE reaches them, and email is only for those it cannot), or no
 * longer allows its category by email (`no_consent`: an unsubscribe), each for the customer the
 * row belongs to as of the mark (a merge since the claim, or one the mark waited for, moved it to
 * the survivor and removed the merged customer's consent rows: see markHeldUnlessErased).
 */
const stopped = sql<string | null>`case
    when ${lineFriendOf('d')} then 'line_friend'
    when not ${consentGrantedSql('d.customer_id', 'd.category', 'email')} then 'no_consent'
  end`

/**
 * Marks the row's email as about to go to the SMTP server (`email_trying_at`), in a statement of
 * its own, committed before it goes (sendEmails marks each email so, as it takes its slot): an
 * email has no retry key, so a worker that stops (or a Postgres that goes away) before the
 * outcome is recorded leaves the mark on a row in `sending`, and the claim that takes the row
 * over after the lease fails it as of unknown outcome instead of sending it again (see
 * claimDeliveries). The row is marked only if the claim still holds it, its customer was not
 * erased since the claim (`erased`: the email goes to their address, in their name, and must
 * not), and LINE still cannot reach them and they allow the category by email (`line_friend`,
 * `no_consent`), all read for the customer the row has as of the mark, in the statement that
 * marks it (one a merge moved while it waited is judged again by the next); null when another
 * claim took it. A prepared statement (its text never changes).
 */
export async function markEmailTrying(
  db: Db,
  id: string,
  claim: Claim,
): Promise<'marked' | 'erased' | 'line_friend' | 'no_consent' | null> {
  const result = await markHeldUnlessErased(db, [id], claim, sql`email_trying_at = now()`, stopped)
  if (result.marked.has(id)) return 'marked'
  if (result.erased.has(id)) return 'erased'
  const why = result.stopped.get(id)
  return why === 'line_friend' || why === 'no_consent' ? why : null
}
