import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

/**
 * When the LINE user last unfollowed, by the unfollow events stored in the webhook inbox (an
 * unfollow from an unknown user creates no customer; its event is all that is kept). Uses
 * webhook_event_unfollow_user_idx; the type is a literal so that a generic plan still matches
 * the partial index.
 */
export async function findLastUnfollowAt(db: Db, lineUid: string): Promise<Date | undefined> {
  const row = await db
    .selectFrom('webhook_event')
    .select((eb) => eb.fn.max('occurred_at').as('at'))
    .where(sql<boolean>`type = 'unfollow'`)
    .where(sql`payload->'source'->>'userId'`, '=', lineUid)
    .executeTakeFirst()
  return row?.at ?? undefined
}
