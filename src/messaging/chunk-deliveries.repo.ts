import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

/** A delivery of a stored multicast chunk, found by a user id its request names. */
export type ChunkDelivery = {
  id: string
  chunk_id: string
  /** The user id in the chunk's `to` by which it was found (its customer's LINE user). */
  named_uid: string
  /** That user follows the account now: LINE delivers nothing to one who blocked it. */
  line_friend: boolean
  status: string
  channel: string | null
  category: 'transactional' | 'marketing'
  customer_id: string
  erased: boolean
  answers_person: boolean
}

/**
 * The deliveries of these chunks, found through the user ids each chunk's stored request names
 * (their customers' deliveries tagged with the chunk: indexed lookups, where the chunk's rows
 * have no index of their own), with where the person stands now. A user id no delivery of the
 * chunk answers to has no row.
 */
export async function chunkDeliveries(
  db: Db,
  chunks: { id: string; to: string[] }[],
): Promise<ChunkDelivery[]> {
  const pairs = chunks.flatMap((c) => c.to.map((uid) => [c.id, uid] as const))
  if (pairs.length === 0) return []
  const result = await sql<ChunkDelivery>`
    select d.id, d.multicast_request_id as chunk_id, t.uid as named_uid, d.status, d.channel,
      d.category, d.customer_id, c.erased_at is not null as erased,
      named.status = 'friend' as line_friend,
      d.line_user_id is not null as answers_person
    from unnest(${pairs.map((p) => p[0])}::uuid[], ${pairs.map((p) => p[1])}::text[])
      as t(chunk_id, uid)
    join line_user named on named.line_uid = t.uid
    join delivery d on d.customer_id = named.customer_id and d.multicast_request_id = t.chunk_id
    join customer c on c.id = d.customer_id
  `.execute(db)
  return result.rows
}

/** The chunks LINE answered 200 or 409 for (recordMulticastAccepted): it took their key. */
export async function acceptedChunks(db: Db, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const rows = await db
    .selectFrom('multicast_request')
    .select('id')
    .where('id', 'in', ids)
    .where('line_request_id', 'is not', null)
    .execute()
  return new Set(rows.map((r) => r.id))
}

/** LINE's request id for an accepted multicast chunk. */
export async function recordMulticastAccepted(
  db: Db,
  id: string,
  lineRequestId: string | null,
): Promise<void> {
  await db
    .updateTable('multicast_request')
    .set({ line_request_id: lineRequestId })
    .where('id', '=', id)
    .execute()
}

/**
 * LINE refused a chunk's request (a 400): it took nothing under the chunk's key, whichever job
 * sent it (a request LINE had taken would get a 409), so the key's first call is forgotten on
 * every delivery of the chunk not sent, whichever job holds it: none repeats the chunk again,
 * each goes as a new send. A job repeating the chunk meanwhile sends the same body under the
 * same key, and LINE answers it the same. Found through the user ids the chunk names (`to`), as
 * chunkDeliveries; `updated_at` is left alone (it is the lease of rows another job holds).
 */
export async function forgetRefusedChunk(db: Db, chunkId: string, to: string[]): Promise<void> {
  await sql`
    with refused as (
      select d.id from unnest(${to}::text[]) as t(uid)
      join line_user named on named.line_uid = t.uid
      join delivery d on d.customer_id = named.customer_id and d.multicast_request_id = ${chunkId}
      where d.status <> 'sent' and d.line_first_call_at is not null
      order by d.id for update of d
    )
    update delivery d set line_first_call_at = null from refused where d.id = refused.id
  `.execute(db)
}

/**
 * Drops the stored requests of chunks made over 24 hours ago: each names up to 500 friends' user
 * ids, and is kept only to repeat the chunk under its retry key. Its rows' first call was made
 * with the chunk, and past RETRY_KEY_SAFE_HOURS from it a row fails instead of repeating it
 * (storedRequestOf), so nothing reads these again. Returns how many were dropped.
 */
export async function forgetOldChunkBodies(db: Db): Promise<number> {
  const result = await db
    .updateTable('multicast_request')
    .set({ body: null })
    .where('body', 'is not', null)
    .where('created_at', '<', sql<Date>`now() - interval '24 hours'`)
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}
