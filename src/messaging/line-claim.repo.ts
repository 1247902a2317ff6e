import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { executePrepared } from '../platform/prepared.ts'
import type { ReplyState } from './delivery.repo.ts'

/**
 * Marks the rows' replies, in a statement of its own: `trying` is committed before the call, so
 * a worker that stops before recording the outcome leaves a trace the next claim sees. Null: the
 * reply sent nothing and may be tried again.
 */
export async function setReplyState(
  db: Db,
  ids: string[],
  state: ReplyState | null,
): Promise<void> {
  if (ids.length === 0) return
  await db
    .updateTable('delivery')
    .set({ reply_state: state })
    .where('id', 'in', ids)
    .where('status', '=', 'sending')
    .execute()
}

/**
 * Stores each push request before it is sent, in a statement of its own: a retry, even after
 * the worker stopped, repeats that body under the row's retry key (LINE-API.md §2.4). The first
 * time a request goes under that key is noted too: LINE honours it for 24 hours from then. A
 * row of a chunk LINE refused leaves the chunk: its retries repeat this push, never the chunk.
 */
export async function storePushBodies(
  db: Db,
  pushes: { id: string; body: string }[],
): Promise<void> {
  if (pushes.length === 0) return
  await executePrepared(
    db,
    sql`
    update delivery d set push_body = b.body, multicast_request_id = null,
      line_first_call_at = coalesce(d.line_first_call_at, now())
    from unnest(${pushes.map((p) => p.id)}::uuid[], ${pushes.map((p) => p.body)}::text[])
      as b(id, body)
    where d.id = b.id and d.status = 'sending'
  `,
  )
}

/**
 * Groups rows for one multicast: a retry key of their own, kept for every retry of the chunk.
 * Each row notes when a request of its first went to LINE (see storePushBodies).
 */
export async function createMulticastRequest(
  db: Db,
  deliveryIds: string[],
  body: string,
): Promise<{ id: string; retryKey: string }> {
  const result = await sql<{ id: string; line_retry_key: string }>`
    with mr as (
      insert into multicast_request (body) values (${body}) returning id, line_retry_key
    ),
    tagged as (
      update delivery set multicast_request_id = (select id from mr),
        line_first_call_at = coalesce(line_first_call_at, now())
      where id = any(${deliveryIds}::uuid[]) and status = 'sending'
    )
    select id, line_retry_key from mr
  `.execute(db)
  const row = result.rows[0]!
  return { id: row.id, retryKey: row.line_retry_key }
}
