import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import type { DeliveryIntent as Intent } from './delivery.service.ts'

function deliveryValues(d: Intent) {
  const template = 'templateId' in d.content ? d.content : null
  return {
    dedupe_key: d.dedupeKey,
    kind: d.kind,
    category: d.category,
    customer_id: d.customerId,
    template_id: template?.templateId ?? null,
    vars: JSON.stringify(template?.vars ?? {}),
    messages: 'messages' in d.content ? JSON.stringify(d.content.messages) : null,
    line_user_id: d.reply?.lineUserId ?? null,
    reply_token: d.reply?.token ?? null,
    reply_token_expires_at: d.reply?.expiresAt ?? null,
    over_cap: d.overCap ?? 'defer',
    ...(d.sendAfter ? { send_after: d.sendAfter } : {}),
  }
}

/** Creates the row once per dedupe key; returns its id, or null when it already existed. */
export async function insertDelivery(db: Db, d: Intent): Promise<string | null> {
  const row = await db
    .insertInto('delivery')
    .values(deliveryValues(d))
    .onConflict((oc) => oc.column('dedupe_key').doNothing())
    .returning('id')
    .executeTakeFirst()
  return row?.id ?? null
}

/** Bulk form of insertDelivery: the rows created (existing dedupe keys are left alone). */
export async function insertDeliveries(
  db: Db,
  intents: Intent[],
): Promise<{ id: string; sendAfter: Date }[]> {
  if (intents.length === 0) return []
  const rows = await db
    .insertInto('delivery')
    .values(intents.map((d) => ({ send_after: sql<Date>`now()`, ...deliveryValues(d) })))
    .onConflict((oc) => oc.column('dedupe_key').doNothing())
    .returning(['id', 'send_after'])
    .execute()
  return rows.map((r) => ({ id: r.id, sendAfter: r.send_after }))
}

/** Unsent deliveries with these keys become `cancelled`; returns how many. */
export async function cancelDeliveryRows(
  db: Db,
  dedupeKeys: string[],
  reason: string,
): Promise<number> {
  if (dedupeKeys.length === 0) return 0
  const result = await db
    .updateTable('delivery')
    .set({ status: 'cancelled', skip_reason: reason, push_body: null, updated_at: sql`now()` })
    .where('dedupe_key', 'in', dedupeKeys)
    .where('status', '=', 'pending')
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}

/**
 * Refreshes the planner's statistics of `delivery` after a big campaign is written, before it
 * is sent: autovacuum would get to it a minute or more later, and meanwhile the send's
 * statements were planned for the table as it was (on a 100k campaign: a whole-table scan per
 * job of 100, the campaign at half speed). ANALYZE reads a sample, not the whole table.
 */
export async function analyzeDeliveries(db: Db): Promise<void> {
  await sql`analyze delivery`.execute(db)
}
