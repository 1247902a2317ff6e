import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

export type NewLineDelivery = {
  dedupeKey: string
  kind: string
  category: 'transactional' | 'marketing'
  customerId: string
  lineUserId: string
  messages: unknown[]
  replyToken?: string | null
  replyTokenExpiresAt?: Date | null
}

/** Creates the row once per dedupe key; returns its id, or null when it already existed. */
export async function insertDelivery(db: Db, d: NewLineDelivery): Promise<string | null> {
  const row = await db
    .insertInto('delivery')
    .values({
      dedupe_key: d.dedupeKey,
      kind: d.kind,
      category: d.category,
      customer_id: d.customerId,
      line_user_id: d.lineUserId,
      messages: JSON.stringify(d.messages),
      reply_token: d.replyToken ?? null,
      reply_token_expires_at: d.replyTokenExpiresAt ?? null,
    })
    .onConflict((oc) => oc.column('dedupe_key').doNothing())
    .returning('id')
    .executeTakeFirst()
  return row?.id ?? null
}

/** Moves a row to `sending` for one attempt; null when it is already finished. */
export async function claimDelivery(db: Db, id: string) {
  return db
    .updateTable('delivery')
    .set({ status: 'sending', attempts: sql`attempts + 1`, updated_at: sql`now()` })
    .where('id', '=', id)
    .where('status', 'in', ['pending', 'sending'])
    .returningAll()
    .executeTakeFirst()
}

export async function markDeliverySent(
  db: Db,
  id: string,
  how: { channel: 'line'; lineRequestId: string | null },
): Promise<void> {
  await db
    .updateTable('delivery')
    .set({
      status: 'sent',
      channel: how.channel,
      line_request_id: how.lineRequestId,
      sent_at: sql`now()`,
      last_error: null,
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .where('status', '=', 'sending')
    .execute()
}

export async function finishDelivery(
  db: Db,
  id: string,
  status: 'failed' | 'skipped' | 'quota_exceeded',
  reason: string,
): Promise<void> {
  await db
    .updateTable('delivery')
    .set({
      status,
      ...(status === 'skipped' ? { skip_reason: reason } : { last_error: reason.slice(0, 2_000) }),
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .where('status', 'in', ['pending', 'sending'])
    .execute()
}

export async function recordDeliveryError(db: Db, id: string, error: string): Promise<void> {
  await db
    .updateTable('delivery')
    .set({ last_error: error.slice(0, 2_000), updated_at: sql`now()` })
    .where('id', '=', id)
    .execute()
}

export async function listStaleDeliveries(db: Db, olderThan: Date, limit: number) {
  const rows = await db
    .selectFrom('delivery')
    .select('id')
    .where('status', 'in', ['pending', 'sending'])
    .where('updated_at', '<', olderThan)
    .where('send_after', '<=', sql<Date>`now()`)
    .limit(limit)
    .execute()
  return rows.map((r) => r.id)
}
