import { type RawBuilder, sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import { afterKeyset, type Keyset } from '../platform/keyset.ts'
import { executePrepared } from '../platform/prepared.ts'
import { keyMayBeTaken, keyPastSafeAge } from './retry-key.ts'

/**
 * A row in `sending` longer than this was abandoned (a crashed worker): it may be claimed again.
 * Far longer than a batch takes (limiter waits, a slow SMTP relay), so a live send is never
 * taken over.
 */
export const SENDING_LEASE_SECONDS = 600

/** A claimed delivery with what its send needs: the customer's address and LINE friend status. */
export type ClaimedDelivery = Awaited<ReturnType<typeof claimDeliveries>>[number]

/**
 * Moves due rows to `sending` for one attempt and returns them with the customer's email and
 * LINE identity (the one the delivery names, else the customer's friend, else any), in one
 * statement. Rows already finished, not yet due, or being sent by another worker (in `sending`
 * for less than the lease) are left out.
 */
export async function claimDeliveries(db: Db, ids: string[], leaseSeconds = SENDING_LEASE_SECONDS) {
  const result = await executePrepared(
    db,
    sql<{
      id: string
      kind: string
      category: 'transactional' | 'marketing'
      customer_id: string
      template_id: string | null
      /** Messages built when sent (delivery-content.ts), by this builder from `vars`. */
      builder: string | null
      vars: Record<string, unknown>
      messages: unknown[] | null
      reply_token: string | null
      reply_token_expires_at: Date | null
      line_retry_key: string
      attempts: number
      over_cap: 'defer' | 'skip'
      email: string | null
      erased: boolean
      line_user_id: string | null
      line_uid: string | null
      line_friend: boolean
      multicast_request_id: string | null
      multicast_retry_key: string | null
      /** The chunk's request as first sent (JSON text), to repeat exactly. */
      multicast_body: string | null
      /** An answer to the person's own message or tap (a reply), not a message they didn't ask for. */
      answers_person: boolean
      /** `trying`: an earlier attempt stopped during its reply; `refused`: its reply sent nothing. */
      reply_state: ReplyState | null
      /** The push request an earlier attempt sent (JSON text), to repeat exactly. */
      push_body: string | null
      /** When a request under the row's retry key (its own or its chunk's) first went to LINE. */
      line_first_call_at: Date | null
      /** A request under the key may have reached LINE (see keyMayBeTaken). */
      line_key_used: boolean
      /** ...more than RETRY_KEY_SAFE_HOURS ago: it must not go again under that key. */
      line_key_expired: boolean
      /**
       * An earlier claim was handing the email to the SMTP server and its outcome was never
       * recorded (a worker stopped, Postgres was away): it may have arrived.
       */
      email_in_doubt: boolean
    }>`
    with claimed as (
      update delivery set status = 'sending', attempts = attempts + 1, updated_at = now(),
        -- The email mark of a row back to pending is that of an attempt whose outcome was
        -- recorded since; one on a row left in 'sending' says the email may have gone.
        email_trying_at = case when status = 'pending' then null else email_trying_at end
      where id = any(${ids}::uuid[]) and send_after <= now() + interval '250 milliseconds'
        and (status = 'pending' or (status = 'sending'
          and updated_at < now() - make_interval(secs => ${leaseSeconds})))
      returning *
    )
    select d.id, d.kind, d.category, d.customer_id, d.template_id, d.builder, d.vars, d.messages,
      d.reply_token, d.reply_token_expires_at, d.line_retry_key, d.attempts, d.over_cap,
      c.email, c.erased_at is not null as erased,
      lu.id as line_user_id, lu.line_uid, coalesce(lu.status = 'friend', false) as line_friend,
      d.multicast_request_id, mr.line_retry_key as multicast_retry_key,
      mr.body as multicast_body,
      d.line_user_id is not null as answers_person, d.reply_state, d.push_body,
      d.line_first_call_at, ${keyMayBeTaken} as line_key_used,
      ${keyMayBeTaken} and ${keyPastSafeAge} as line_key_expired,
      d.email_trying_at is not null as email_in_doubt
    from claimed d
    join customer c on c.id = d.customer_id
    left join lateral (
      select id, line_uid, status from line_user ${lineUserOf('d')}
    ) lu on true
    left join multicast_request mr on mr.id = d.multicast_request_id
    order by d.id
  `,
  )
  return result.rows
}

/**
 * `where … order by … limit 1` over line_user: the LINE identity the delivery `d` (an alias with
 * its `customer_id` and `line_user_id`) goes to, among its customer's: the one it names (a reply),
 * else one who follows the account, else the latest changed.
 */
function lineUserOf(d: string): RawBuilder<unknown> {
  const col = (name: string) => sql.ref(`${d}.${name}`)
  return sql`where customer_id = ${col('customer_id')}
    order by id = ${col('line_user_id')} desc nulls last, status = 'friend' desc,
      status_changed_at desc
    limit 1`
}

/**
 * Whether the LINE identity the delivery `d` goes to (lineUserOf) follows the account: LINE can
 * reach the person. For a statement over deliveries.
 */
export function lineFriendOf(d: string): RawBuilder<boolean> {
  return sql<boolean>`coalesce((select status = 'friend' from line_user ${lineUserOf(d)}), false)`
}

/** Where a delivery's reply stands (see the migration that adds `reply_state`). */
export type ReplyState = 'trying' | 'refused'

/**
 * Which rows a job's claim took, each with its `attempts` as the claim left it: the claim token.
 * Only a claim raises `attempts`, so a row whose count moved on was claimed again since (its
 * lease ran out and another job took it), and is that job's.
 */
export type Claim = ReadonlyMap<string, number>

/** The rows `ids` as the claim holds them: `held(id, attempts)`, to join on both. */
export function held(claim: Claim, ids: string[]) {
  const attempts = ids.map((id) => claim.get(id) ?? null)
  return sql`unnest(${ids}::uuid[], ${attempts}::int[]) as held(id, attempts)`
}

/** The delivery `d` is still `sending` under the claim (joined with `held` on its id). */
export const stillHeld = sql`d.id = held.id and d.attempts = held.attempts and d.status = 'sending'`

/**
 * Statements markHeldUnlessErased runs at most: each after the first judges again, as of its own
 * start, the rows that changed while the one before waited (a merge moved them).
 */
const MARK_ROUNDS = 3

/**
 * Sets `set` on the rows `ids` the claim still holds, unless their customer was erased: what
 * marks an email or a reply as about to go (a row in `sending` is not skipped by an erasure, and
 * the message names the person). The customers are locked first (key share, in id order), so an
 * erasure under way, which holds its customers from its start, is waited for and seen. `stop`,
 * when given, is why a row must not go now after all (null: it goes), read in the same statement
 * for the row's customer: an SQL expression over `d` (the row: `id`, `customer_id`, `category`,
 * `line_user_id`). Returns the rows marked, the held rows of erased customers (not marked), and
 * the others `stop` held back, with its reason (not marked): each judged for the customer the
 * row has as of its mark.
 *
 * A statement reads the rows and what `stop` reads as of its start, but may wait for a customer's
 * lock: a merge that commits meanwhile has moved the row to the survivor (and removed the merged
 * customer's consent rows and LINE identities). So a row is marked, or its judgement kept, only
 * if it still has the customer it was judged for (the update, or a lock, reads the row as
 * committed since); one that was moved is judged again by a statement of its own, which sees the
 * merge, up to MARK_ROUNDS statements (a row still moving after those is not marked: it is left
 * as one another claim took, for the lease to hand back).
 */
export async function markHeldUnlessErased(
  db: Db,
  ids: string[],
  claim: Claim,
  set: RawBuilder<unknown>,
  stop: RawBuilder<string | null> = sql`null::text`,
): Promise<{ marked: Set<string>; erased: Set<string>; stopped: Map<string, string> }> {
  const marked = new Set<string>()
  const erased = new Set<string>()
  const stopped = new Map<string, string>()
  let left = ids
  for (let round = 0; round < MARK_ROUNDS && left.length > 0; round++) {
    const moved: string[] = []
    for (const r of await markRound(db, left, claim, set, stop)) {
      if (r.moved) moved.push(r.id)
      else if (r.erased) erased.add(r.id)
      else if (r.stop !== null) stopped.set(r.id, r.stop)
      else marked.add(r.id)
    }
    left = moved
  }
  return { marked, erased, stopped }
}

/**
 * One statement of markHeldUnlessErased, on the rows it held at its start (`claimed`), each
 * judged for the customer it had then. `moved`: the row changed before it was marked or locked
 * (its customer or its claim): nothing was done to it, and the judgement is not to be used.
 */
async function markRound(
  db: Db,
  ids: string[],
  claim: Claim,
  set: RawBuilder<unknown>,
  stop: RawBuilder<string | null>,
) {
  // The row as committed, still the claim's and still the customer's it was judged for.
  const unchanged = sql`${stillHeld} and judged.id = d.id and d.customer_id = judged.customer_id`
  const result = await executePrepared(
    db,
    sql<{ id: string; erased: boolean; stop: string | null; moved: boolean }>`
    with held as (select * from ${held(claim, ids)}),
    claimed as (
      select d.id, d.customer_id, d.category, d.line_user_id from delivery d, held
      where ${stillHeld}
    ),
    owner as materialized (
      select c.id, c.erased_at is not null as erased from customer c
      where c.id in (select customer_id from claimed)
      order by c.id for key share of c
    ),
    judged as materialized (
      select d.id, d.customer_id, owner.erased,
        case when owner.erased then null else ${stop} end as stop
      from claimed d join owner on owner.id = d.customer_id
    ),
    marked as (
      update delivery d set ${set} from held, judged
      where ${unchanged} and not judged.erased and judged.stop is null
      returning d.id
    ),
    -- The rows not to mark, locked as the update would (after their customer, as a merge or an
    -- erasure does): a lock reads the row as committed since the statement began.
    kept as (
      select d.id from delivery d, held, judged
      where ${unchanged} and (judged.erased or judged.stop is not null)
      for no key update of d
    )
    select judged.id, judged.erased, judged.stop,
      marked.id is null and kept.id is null as moved
    from judged left join marked on marked.id = judged.id left join kept on kept.id = judged.id`,
  )
  return result.rows
}

export function claimOf(rows: Pick<ClaimedDelivery, 'id' | 'attempts'>[]): Claim {
  return new Map(rows.map((r) => [r.id, r.attempts]))
}

/**
 * Due deliveries nobody is working on: pending ones older than `olderThan` (their job was lost),
 * due since before it (a job delayed to their send_after reached the queue then), and not
 * waiting for their job's next try (a LINE 5xx: retry_at), or whose try is that late, and ones
 * left in `sending` past the lease (a crashed worker). By the later of their last write and
 * their due time, from after the row `after` (the last of the page before): each page is a range
 * of delivery_unfinished_idx (by that time, so rows deferred to later, a campaign held for quiet
 * hours, are past the range until due; a campaign's rows share one time, and a page inside such
 * a run reads it from its start), and none is read twice (a row written meanwhile moves past the
 * end). A claimed row is due by its claim (send_after at most 250 ms later): `sending` rows are
 * by their last write.
 */
export async function listStaleDeliveries(
  db: Db,
  olderThan: Date,
  limit: number,
  after?: Keyset,
  leaseSeconds = SENDING_LEASE_SECONDS,
) {
  const leaseStart = sql<Date>`now() - make_interval(secs => ${leaseSeconds})`
  // delivery_unfinished_idx's key, written as the index has it.
  const staleFrom = sql<Date>`greatest(updated_at, send_after)`
  return db
    .selectFrom('delivery')
    .select(['id', sql<string>`${staleFrom}::text`.as('at')])
    .where(sql<boolean>`status in ('pending', 'sending')`)
    .where(staleFrom, '<', sql<Date>`greatest(${olderThan}::timestamptz, ${leaseStart})`)
    .where((eb) =>
      eb.or([
        eb.and([
          eb('status', '=', 'pending'),
          eb('updated_at', '<', olderThan),
          eb('send_after', '<', olderThan),
          eb.or([eb('retry_at', 'is', null), eb('retry_at', '<', olderThan)]),
        ]),
        eb.and([eb('status', '=', 'sending'), eb('updated_at', '<', leaseStart)]),
      ]),
    )
    .where('send_after', '<=', sql<Date>`now()`)
    .where(afterKeyset(staleFrom, after))
    .orderBy(staleFrom)
    .orderBy('id')
    .limit(limit)
    .execute()
}
