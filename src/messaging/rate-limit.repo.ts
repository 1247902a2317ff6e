import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import type { Claim } from './delivery-claim.repo.ts'

/**
 * Counts one more rate-limit 429 on each of these deliveries, on rows `claim` still holds only
 * (see recordOutcomes), and returns each one's count with it. The count starts again at 0 when
 * `kizuna deliveries retry` requeues the delivery (requeueDeliveries), whatever failed it.
 */
export async function countRateLimitTries(
  db: Db,
  ids: string[],
  claim: Claim,
): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map()
  const result = await sql<{ id: string; tries: number }>`
    with counted as (
      select d.id, d.rate_limit_tries + 1 as tries
      from delivery d
      join unnest(${ids}::uuid[], ${ids.map((id) => claim.get(id) ?? null)}::int[])
        as c(id, attempts) on c.id = d.id
      where d.status = 'sending' and d.attempts = c.attempts
      for update of d
    ),
    noted as (
      update delivery d
      set rate_limit_tries = c.tries
      from counted c
      where d.id = c.id
    )
    select id, tries from counted
  `.execute(db)
  return new Map(result.rows.map((r) => [r.id, r.tries]))
}
