import { sql, type Transaction } from 'kysely'
import { lockLineUsers } from '../identity/line-user-lock.service.ts'
import type { DB } from '../platform/db.ts'
import { ERROR_REMOVED } from './erase-traces.repo.ts'

/**
 * Locks what the webhook worker locks to apply an event of these LINE users, in its order: the
 * stored events, then the users (the caller then locks the customer, as the worker does). Taken
 * the other way round (the customer first, the events last to scrub them), an erasure and a
 * worker applying one of the person's events (an unfollow, a follow) each waited for the other,
 * and the erasure could fail on the deadlock. An event stored from now on waits for the erasure,
 * then finds no one with that LINE user id (a follow makes a new friend). Returns the events' ids.
 * The unsend events go first: the one event whose job locks two, an unsend's locks its own row,
 * then changes the message it names (older or newer than it); taken by id alone, the erasure
 * held that message while waiting for the unsend, and the two deadlocked.
 */
export async function lockLineEvents(trx: Transaction<DB>, lineUids: string[]): Promise<string[]> {
  if (lineUids.length === 0) return []
  // A group's join or leave names its members outside `source`, and a message the people
  // it mentions.
  const members = lineUids.map((userId) => JSON.stringify([{ userId }]))
  const { rows } = await sql<{ id: string }>`
    select id from webhook_event where payload->'source'->>'userId' = any(${lineUids}::text[])
      or payload->'joined'->'members' @> any(${members}::jsonb[])
      or payload->'left'->'members' @> any(${members}::jsonb[])
      or payload->'message'->'mention'->'mentionees' @> any(${members}::jsonb[])
    order by type = 'unsend' desc, id for update`.execute(trx)
  await lockLineUsers(trx, lineUids)
  return rows.map((r) => r.id)
}

/**
 * The webhook inbox keeps each event as LINE sent it (user id, message text, postback data):
 * the person's events keep only their type and id, and no error text (one given up on may
 * quote what it held). An event still waiting to be processed is then skipped (outcome
 * 'erased').
 */
export async function scrubLineEvents(trx: Transaction<DB>, eventIds: string[]): Promise<void> {
  if (eventIds.length === 0) return
  await sql`
    update webhook_event
    set payload = jsonb_build_object('type', type, 'webhookEventId', webhook_event_id,
          'erased', true),
        last_error = case when last_error is not null then ${ERROR_REMOVED} end,
        updated_at = now()
    where id = any(${eventIds}::uuid[])`.execute(trx)
}
