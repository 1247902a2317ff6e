import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { executePrepared } from '../platform/prepared.ts'
import { type Claim, held, stillHeld } from './delivery-claim.repo.ts'

/**
 * Marks the row's email as about to go to the SMTP server (`email_trying_at`), in a statement of
 * its own, committed before it goes (sendEmails marks each email so, as it takes its slot): an
 * email has no retry key, so a worker that stops (or a Postgres that goes away) before the
 * outcome is recorded leaves the mark on a row in `sending`, and the claim that takes the row
 * over after the lease fails it as of unknown outcome instead of sending it again (see
 * claimDeliveries). The row is marked only if the claim still holds it; returns whether it was.
 * Once per email: a prepared statement (its text never changes).
 */
export async function markEmailTrying(db: Db, id: string, claim: Claim): Promise<boolean> {
  const result = await executePrepared(
    db,
    sql<{ id: string }>`
    update delivery d set email_trying_at = now()
    from ${held(claim, [id])} where ${stillHeld}
    returning d.id`,
  )
  return result.rows.length > 0
}
