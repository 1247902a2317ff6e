import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { executePrepared } from '../platform/prepared.ts'
import type { DeliveryIntent as Intent } from './delivery.service.ts'

/**
 * Creates the rows once per dedupe key (existing keys are left alone); returns those created, in
 * the intents' order. One statement whatever their number: the values go as one array per column,
 * not a parameter per value (Postgres takes at most 65,535 parameters per statement; at 13 a row,
 * 5,041 rows), and its text is the same for any number, so it is prepared once per connection.
 */
export async function insertDeliveries(
  db: Db,
  intents: Intent[],
): Promise<{ id: string; sendAfter: Date }[]> {
  if (intents.length === 0) return []
  const col = <T>(pick: (d: Intent) => T | undefined) => intents.map((d) => pick(d) ?? null)
  const template = (d: Intent) => ('templateId' in d.content ? d.content : undefined)
  const built = (d: Intent) => ('builder' in d.content ? d.content : undefined)
  const result = await executePrepared(
    db,
    sql<{ id: string; send_after: Date }>`
    insert into delivery (dedupe_key, kind, category, customer_id, template_id, builder, vars,
      messages, line_user_id, reply_token, reply_token_expires_at, over_cap, send_after)
    select dedupe_key, kind, category, customer_id, template_id, builder, vars::jsonb,
      messages::jsonb, line_user_id, reply_token, reply_token_expires_at, over_cap,
      coalesce(send_after, now())
    from unnest(
      ${col((d) => d.dedupeKey)}::text[], ${col((d) => d.kind)}::text[],
      ${col((d) => d.category)}::text[], ${col((d) => d.customerId)}::uuid[],
      ${col((d) => template(d)?.templateId)}::text[], ${col((d) => built(d)?.builder)}::text[],
      ${col((d) => JSON.stringify((template(d) ?? built(d))?.vars ?? {}))}::text[],
      ${col((d) => ('messages' in d.content ? JSON.stringify(d.content.messages) : undefined))}::text[],
      ${col((d) => d.reply?.lineUserId)}::uuid[], ${col((d) => d.reply?.token)}::text[],
      ${col((d) => d.reply?.expiresAt)}::timestamptz[], ${col((d) => d.overCap ?? 'defer')}::text[],
      ${col((d) => d.sendAfter)}::timestamptz[]
    ) as t(dedupe_key, kind, category, customer_id, template_id, builder, vars, messages,
      line_user_id, reply_token, reply_token_expires_at, over_cap, send_after)
    on conflict (dedupe_key) do nothing
    returning id, send_after
  `,
  )
  return result.rows.map((r) => ({ id: r.id, sendAfter: r.send_after }))
}

/** Creates the row once per dedupe key; returns its id, or null when it already existed. */
export async function insertDelivery(db: Db, d: Intent): Promise<string | null> {
  const [row] = await insertDeliveries(db, [d])
  return row?.id ?? null
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
