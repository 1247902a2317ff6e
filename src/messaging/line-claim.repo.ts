import { sql } from 'kysely'
import { type Db, inTransaction } from '../platform/db.ts'
import { executePrepared } from '../platform/prepared.ts'
import {
  type Claim,
  held,
  markHeldUnlessErased,
  type ReplyState,
  stillHeld,
} from './delivery-claim.repo.ts'

/*
 * A delivery's LINE-side writes, each on rows still in `sending` under the job's claim (their
 * `attempts` as the claim left it, see Claim), in the statement that writes them; each returns
 * the rows it wrote. A job that outlived the lease (a LINE call has no time limit) finds rows
 * another job claimed since: it leaves them to that job and makes no LINE call for them. Every
 * call is preceded by one of these, which fixes what goes out under which key before the call
 * (a reply marked under way, a push stored, a chunk tagged): a job that takes the row over later
 * finds it and repeats that request under the same key, or fails the reply; never another key.
 */

/** Which of `ids` the claim still holds (read just before a call that writes nothing first). */
export async function heldRows(db: Db, ids: string[], claim: Claim): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const result = await sql<{ id: string }>`
    select d.id from delivery d, ${held(claim, ids)} where ${stillHeld}`.execute(db)
  return new Set(result.rows.map((r) => r.id))
}

/**
 * Marks the rows' replies as under way (`trying`, see setReplyState) before they go, on the rows
 * the claim still holds whose customer was not erased since the claim (`erased`: the reply
 * answers them, with their name, and must not go).
 */
export function markRepliesTrying(
  db: Db,
  ids: string[],
  claim: Claim,
): Promise<{ marked: Set<string>; erased: Set<string> }> {
  return markHeldUnlessErased(db, ids, claim, sql`reply_state = 'trying'`)
}

/**
 * Marks the rows' replies, in a statement of its own: `trying` is committed before the call, so
 * a worker that stops before recording the outcome leaves a trace the next claim sees, and a
 * job that takes the row over after the lease fails it instead of replying or pushing (the token
 * is spent or the reply may have arrived; markRepliesTrying sets it). Null: the reply sent nothing
 * and may be tried again.
 */
export async function setReplyState(
  db: Db,
  ids: string[],
  claim: Claim,
  state: Exclude<ReplyState, 'trying'> | null,
): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const result = await sql<{ id: string }>`
    update delivery d set reply_state = ${state}::text
    from ${held(claim, ids)} where ${stillHeld}
    returning d.id`.execute(db)
  return new Set(result.rows.map((r) => r.id))
}

/**
 * Stores each push request before it is sent, in a statement of its own: a retry, even after
 * the worker stopped, repeats that body under the row's retry key (LINE-API.md §2.4). The first
 * time a request goes under that key is noted too: LINE honours it for 24 hours from then, and
 * a reply LINE refused before it is marked `refused` (replyRefused). A row of a chunk LINE
 * refused leaves the chunk: its retries repeat this push, never the chunk.
 * Rows of a customer erased since the claim are not stored (`erased`): the push names them, and
 * must not go.
 */
export async function storePushBodies(
  db: Db,
  pushes: { id: string; body: string }[],
  claim: Claim,
): Promise<{ stored: Set<string>; erased: Set<string> }> {
  if (pushes.length === 0) return { stored: new Set(), erased: new Set() }
  const ids = pushes.map((p) => p.id)
  const result = await executePrepared(
    db,
    sql<{ id: string; stored: boolean }>`
    with held as (
      select * from unnest(${ids}::uuid[], ${ids.map((id) => claim.get(id) ?? null)}::int[],
        ${pushes.map((p) => p.body)}::text[]) as held(id, attempts, body)
    ),
    erased as (
      select d.id from delivery d, held where ${stillHeld} and ${erasedCustomer}
    ),
    stored as (
      update delivery d set push_body = held.body, multicast_request_id = null,
        line_first_call_at = coalesce(d.line_first_call_at, now()), reply_state = ${replyRefused}
      from held
      where ${stillHeld} and d.id not in (select id from erased)
      returning d.id
    )
    select id, true as stored from stored union all select id, false from erased
  `,
  )
  const of = (stored: boolean) =>
    new Set(result.rows.flatMap((r) => (r.stored === stored ? [r.id] : [])))
  return { stored: of(true), erased: of(false) }
}

/**
 * The row's reply state once its push or chunk is stored: a reply under way (`trying`) on a row
 * the job is about to push was refused by LINE (sendReplies returns only those for a push), and
 * is marked so in the statement that stores the request, whether or not sendReplies' own mark
 * was written: a retry then repeats the request instead of failing the row as a reply the worker
 * stopped during.
 */
const replyRefused = sql<string | null>`case when reply_state = 'trying' then 'refused'
  else reply_state end`

/** The row's customer was erased (read when the statement starts). */
const erasedCustomer = sql<boolean>`exists (select 1 from customer c
  where c.id = d.customer_id and c.erased_at is not null)`

/**
 * Groups the rows the claim still holds for one multicast: a retry key of its own, kept for
 * every retry of the chunk, and the request (`bodyOf` those rows) stored before it goes. Each
 * row notes when a request of its first went to LINE, and marks a reply LINE refused (see
 * storePushBodies). The rows are locked while the chunk is made, so none is claimed again in
 * between. Rows of a customer erased since the claim are left out of it (`erased`). Null when it
 * holds none to send.
 */
export async function createMulticastRequest(
  db: Db,
  ids: string[],
  claim: Claim,
  bodyOf: (ids: string[]) => string,
): Promise<{
  erased: string[]
  chunk: { id: string; retryKey: string; body: string; tagged: string[] } | null
}> {
  return inTransaction(db, async (trx) => {
    const locked = await sql<{ id: string; erased: boolean }>`
      select d.id, ${erasedCustomer} as erased from delivery d, ${held(claim, ids)}
      where ${stillHeld} order by d.id for update of d`.execute(trx)
    const holds = new Set(locked.rows.flatMap((r) => (r.erased ? [] : [r.id])))
    const erased = locked.rows.flatMap((r) => (r.erased ? [r.id] : []))
    const tagged = ids.filter((id) => holds.has(id))
    if (tagged.length === 0) return { erased, chunk: null }
    const body = bodyOf(tagged)
    const chunk = await trx
      .insertInto('multicast_request')
      .values({ body })
      .returning(['id', 'line_retry_key'])
      .executeTakeFirstOrThrow()
    await trx
      .updateTable('delivery')
      .set({
        multicast_request_id: chunk.id,
        line_first_call_at: sql`coalesce(line_first_call_at, now())`,
        reply_state: replyRefused,
      })
      .where('id', 'in', tagged)
      .execute()
    return { erased, chunk: { id: chunk.id, retryKey: chunk.line_retry_key, body, tagged } }
  })
}
