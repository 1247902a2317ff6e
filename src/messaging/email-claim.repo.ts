import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { type Claim, held, stillHeld } from './delivery-claim.repo.ts'

/**
 * Marks the rows' emails as about to go to the SMTP server (`email_trying_at`), in a statement of
 * its own, committed before they go (sendEmails marks each email so, as it takes its slot): an
 * email has no retry key, so a worker that stops (or a Postgres that goes away) before the
 * outcome is recorded leaves the mark on a row in `sending`, and the claim that takes the row
 * over after the lease fails it as of unknown outcome instead of sending it again (see
 * claimDeliveries). Only rows the claim still holds are marked; returns those.
 */
export async function markEmailsTrying(db: Db, ids: string[], claim: Claim): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const result = await sql<{ id: string }>`
    update delivery d set email_trying_at = now()
    from ${held(claim, ids)} where ${stillHeld}
    returning d.id`.execute(db)
  return new Set(result.rows.map((r) => r.id))
}
