import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { type Claim, markHeldUnlessErased } from './delivery-claim.repo.ts'

/**
 * Marks the row's email as about to go to the SMTP server (`email_trying_at`), in a statement of
 * its own, committed before it goes (sendEmails marks each email so, as it takes its slot): an
 * email has no retry key, so a worker that stops (or a Postgres that goes away) before the
 * outcome is recorded leaves the mark on a row in `sending`, and the claim that takes the row
 * over after the lease fails it as of unknown outcome instead of sending it again (see
 * claimDeliveries). The row is marked only if the claim still holds it and its customer was not
 * erased since the claim (`erased`: the email goes to their address, in their name, and must
 * not); null when another claim took it. Once per email: a prepared statement (its text never
 * changes).
 */
export async function markEmailTrying(
  db: Db,
  id: string,
  claim: Claim,
): Promise<'marked' | 'erased' | null> {
  const { marked, erased } = await markHeldUnlessErased(
    db,
    [id],
    claim,
    sql`email_trying_at = now()`,
  )
  if (marked.has(id)) return 'marked'
  return erased.has(id) ? 'erased' : null
}
