import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { afterKeyset, type Keyset } from '../platform/keyset.ts'
import { executePreparedText, PREPARE } from '../platform/prepared.ts'

const INSERT_BODIES_SQL = `${PREPARE}
  insert into webhook_event (webhook_event_id, type, mode, is_redelivery, occurred_at, payload)
  select e->>'webhookEventId', e->>'type', e->>'mode',
         coalesce((e->'deliveryContext'->>'isRedelivery')::boolean, false),
         to_timestamp((e->>'timestamp')::numeric / 1000),
         e
  from jsonb_array_elements($1::jsonb) as body,
       jsonb_array_elements(body->'events') as e
  on conflict (webhook_event_id) do nothing
  returning webhook_event_id`

/**
 * Stores the events of many webhook requests in one statement. The request bodies go to
 * Postgres as they arrived (one jsonb parameter, no re-serialising) and Postgres unpacks the
 * events; returns the ids that were new (duplicates are skipped).
 */
export async function insertWebhookBodies(db: Db, bodies: string[]): Promise<Set<string>> {
  if (bodies.length === 0) return new Set()
  const inserted = await executePreparedText<{ webhook_event_id: string }>(db, INSERT_BODIES_SQL, [
    `[${bodies.join(',')}]`,
  ])
  const fresh = new Set<string>()
  for (const row of inserted.rows) fresh.add(row.webhook_event_id)
  return fresh
}

/** Who sent each stored event and when, to apply one user's events in the order they happened. */
export async function listEventSenders(db: Db, webhookEventIds: string[]) {
  return db
    .selectFrom('webhook_event')
    .select([
      'webhook_event_id',
      'occurred_at',
      sql<string | null>`payload->'source'->>'userId'`.as('user_id'),
    ])
    .where('webhook_event_id', 'in', webhookEventIds)
    .execute()
}

/** Which of these events are still pending. */
export async function listPendingEventIds(db: Db, webhookEventIds: string[]): Promise<string[]> {
  const rows = await db
    .selectFrom('webhook_event')
    .select('webhook_event_id')
    .where('webhook_event_id', 'in', webhookEventIds)
    .where('status', '=', 'pending')
    .execute()
  return rows.map((r) => r.webhook_event_id)
}

export async function lockWebhookEvent(db: Db, webhookEventId: string) {
  return db
    .selectFrom('webhook_event')
    .selectAll()
    .where('webhook_event_id', '=', webhookEventId)
    .forUpdate()
    .executeTakeFirst()
}

export async function markWebhookEventDone(db: Db, id: string, outcome: string): Promise<void> {
  await db
    .updateTable('webhook_event')
    .set({
      status: 'done',
      outcome,
      attempts: sql`attempts + 1`,
      processed_at: sql`now()`,
      updated_at: sql`now()`,
      last_error: null,
    })
    .where('id', '=', id)
    .execute()
}

/** Gives up on an event that is still pending (done ones stay done). */
export async function markWebhookEventFailed(
  db: Db,
  webhookEventId: string,
  error: string,
): Promise<void> {
  await db
    .updateTable('webhook_event')
    .set({
      status: 'failed',
      attempts: sql`attempts + 1`,
      last_error: error.slice(0, 2_000),
      updated_at: sql`now()`,
    })
    .where('webhook_event_id', '=', webhookEventId)
    .where('status', '=', 'pending')
    .execute()
}

/**
 * Counts one more time a job gave up on these events as if Postgres were unreachable; they stay
 * pending (`attempts` of a pending row counts nothing else). Returns each one's count.
 */
export async function countUnreachableRound(
  db: Db,
  webhookEventIds: string[],
): Promise<Map<string, number>> {
  const rows = await db
    .updateTable('webhook_event')
    .set({ attempts: sql`attempts + 1`, updated_at: sql`now()` })
    .where('webhook_event_id', 'in', webhookEventIds)
    .where('status', '=', 'pending')
    .returning(['webhook_event_id', 'attempts'])
    .execute()
  return new Map(rows.map((r) => [r.webhook_event_id, r.attempts]))
}

/** A message event's payload kept to its message's id and type, marked `unsent`. */
const STRIPPED_MESSAGE = sql`jsonb_set(payload, '{message}', jsonb_build_object(
  'id', payload->'message'->'id', 'type', payload->'message'->'type', 'unsent', true))`

/**
 * Whether a stored event's sender may be the given user: the same user id when both carry one.
 * LINE's message ids are its own and unique; a group's or room's source carries the sender's
 * user id only in message events (LINE-API.md §1.4), so its unsend has none and is matched on
 * the message id alone.
 */
const sameSenderIfKnown = (userId: string | null) =>
  sql<boolean>`coalesce(payload->'source'->>'userId' = ${userId}, true)`

/**
 * Forgets what a message said once its sender unsent it (LINE asks for that): the stored
 * message event keeps its id and type, marked `unsent`. Only events stored since `since` are
 * looked at (their ids are time-ordered: a range of the primary key, not the whole table).
 * Returns whether one was found.
 */
export async function forgetUnsentMessage(
  db: Db,
  message: { id: string; userId: string | null; since: Date },
): Promise<boolean> {
  const result = await sql`
    update webhook_event set payload = ${STRIPPED_MESSAGE}, updated_at = now()
    where id >= (lpad(to_hex(${message.since.getTime()}::bigint), 12, '0') || repeat('0', 20))::uuid
      and type = 'message'
      and payload->'message'->>'id' = ${message.id}
      and ${sameSenderIfKnown(message.userId)}`.execute(db)
  return Number(result.numAffectedRows ?? 0) > 0
}

/**
 * Whether an unsend of this message is stored, processed or not: a message that reaches us
 * after it (redelivered, or out of order) is to be forgotten, not answered. The stored unsend is
 * committed before either event's job runs, so whichever job commits first one of them sees the
 * other: the unsend's rewrite finds the message's row, or the message's job finds the unsend.
 * Uses webhook_event_unsend_message_idx (the type a literal, as the index's condition).
 */
export async function isMessageUnsent(
  db: Db,
  message: { id: string; userId: string | null },
): Promise<boolean> {
  const row = await db
    .selectFrom('webhook_event')
    .select('id')
    .where(sql<boolean>`type = 'unsend'`)
    .where(sql`payload->'unsend'->>'messageId'`, '=', message.id)
    .where(sameSenderIfKnown(message.userId))
    .limit(1)
    .executeTakeFirst()
  return row !== undefined
}

/** forgetUnsentMessage for the message event being processed (its row is locked). */
export async function stripMessageEvent(db: Db, webhookEventId: string): Promise<void> {
  await sql`update webhook_event set payload = ${STRIPPED_MESSAGE}, updated_at = now()
    where webhook_event_id = ${webhookEventId} and type = 'message'`.execute(db)
}

/**
 * Pending events stored before `olderThan`, oldest first, from after the row `after` (the last
 * of the page before): each page is a range of webhook_event_pending_idx (by time; rows sharing
 * the page's first time are sorted), and none is read twice.
 */
export async function listStalePendingEvents(
  db: Db,
  olderThan: Date,
  limit: number,
  after?: Keyset,
) {
  return db
    .selectFrom('webhook_event')
    .select([
      'id',
      sql<string>`received_at::text`.as('at'),
      'webhook_event_id',
      sql<string | null>`payload->'source'->>'userId'`.as('user_id'),
    ])
    .where('status', '=', 'pending')
    .where('received_at', '<', olderThan)
    .where(afterKeyset('received_at', after))
    .orderBy('received_at')
    .orderBy('id')
    .limit(limit)
    .execute()
}

/**
 * Deletes processed (done or failed) events that arrived before `olderThan`, a batch at a time
 * so no statement holds many locks; pending ones stay whatever their age. Returns the count.
 *
 * Only pending events have an index by time, so a batch is a range of the primary key: ids are
 * time-ordered (uuid_v7, since 20261201T140000), and received_at stays the truth. The range
 * reaches an hour past `olderThan` (an id takes the clock when it is made, received_at the
 * transaction's start), each batch from after the last one's end. Events stored before ids were
 * time-ordered have random ids (version 4), nearly all above every time-ordered id: a second
 * range, from a day past `now`, finds them. One whose random id falls between the two is
 * deleted on a later night, once the first range has passed it (within the retention).
 */
export async function deleteProcessedWebhookEvents(
  db: Db,
  olderThan: Date,
  opts: { now?: Date; batch?: number } = {},
): Promise<number> {
  const batch = opts.batch ?? 10_000
  const now = opts.now ?? new Date()
  const ranges = [
    { after: MIN_ID, before: timeOrderedIdFloor(olderThan.getTime() + HOUR_MS) },
    { after: timeOrderedIdFloor(now.getTime() + DAY_MS), before: MAX_ID },
  ]
  let deleted = 0
  for (const range of ranges) {
    let after = range.after
    for (;;) {
      const { rows } = await sql<{ picked: number; deleted: number; last: string | null }>`
        with batch as (
          select id from webhook_event
          where id > ${after}::uuid and id < ${range.before}::uuid
            and status <> 'pending' and received_at < ${olderThan}
          order by id
          limit ${batch}
        ), gone as (
          delete from webhook_event where id = any(array(select id from batch)) returning 1
        )
        select (select count(*) from batch)::int as picked,
               (select count(*) from gone)::int as deleted,
               (select id from batch order by id desc limit 1) as last`.execute(db)
      const row = rows[0]
      deleted += row?.deleted ?? 0
      // Fewer than a batch: the range is done (rows another prune took meanwhile count too).
      if (!row?.last || row.picked < batch) break
      after = row.last
    }
  }
  return deleted
}

const HOUR_MS = 3_600_000
const DAY_MS = 24 * HOUR_MS
const MIN_ID = '00000000-0000-0000-0000-000000000000'
const MAX_ID = 'ffffffff-ffff-ffff-ffff-ffffffffffff'

/** The lowest time-ordered id (uuid_v7) made at `ms`. */
function timeOrderedIdFloor(ms: number): string {
  const hex = Math.floor(ms).toString(16).padStart(12, '0')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0000-0000-000000000000`
}
