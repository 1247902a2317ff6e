import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

export type NewWebhookEvent = {
  webhook_event_id: string
  type: string
  mode: string
  is_redelivery: boolean
  occurred_at: Date
  payload: unknown
}

/** One multi-row insert; returns the ids that were new (duplicates are skipped). */
export async function insertWebhookEvents(db: Db, rows: NewWebhookEvent[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set()
  const inserted = await db
    .insertInto('webhook_event')
    .values(rows.map((r) => ({ ...r, payload: JSON.stringify(r.payload) })))
    .onConflict((oc) => oc.column('webhook_event_id').doNothing())
    .returning('webhook_event_id')
    .execute()
  return new Set(inserted.map((r) => r.webhook_event_id))
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

export async function markWebhookEventFailed(
  db: Db,
  webhookEventId: string,
  error: string,
  final: boolean,
): Promise<void> {
  await db
    .updateTable('webhook_event')
    .set({
      status: final ? 'failed' : 'pending',
      attempts: sql`attempts + 1`,
      last_error: error.slice(0, 2_000),
      updated_at: sql`now()`,
    })
    .where('webhook_event_id', '=', webhookEventId)
    .where('status', '=', 'pending')
    .execute()
}

export async function listStalePendingEvents(db: Db, olderThan: Date, limit: number) {
  const rows = await db
    .selectFrom('webhook_event')
    .select('webhook_event_id')
    .where('status', '=', 'pending')
    .where('received_at', '<', olderThan)
    .orderBy('received_at')
    .limit(limit)
    .execute()
  return rows.map((r) => r.webhook_event_id)
}
