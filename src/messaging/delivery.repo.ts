import { sql } from 'kysely'
import { ERROR_REMOVED } from '../customers/erase-traces.repo.ts'
import { type Database, type Db, inTransaction } from '../platform/db.ts'
import { afterKeyset, type Keyset } from '../platform/keyset.ts'
import { executePrepared } from '../platform/prepared.ts'
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
    }>`
    with claimed as (
      update delivery set status = 'sending', attempts = attempts + 1, updated_at = now()
      where id = any(${ids}::uuid[]) and send_after <= now() + interval '250 milliseconds'
        and (status = 'pending' or (status = 'sending'
          and updated_at < now() - make_interval(secs => ${leaseSeconds})))
      returning *
    )
    select d.id, d.kind, d.category, d.customer_id, d.template_id, d.vars, d.messages,
      d.reply_token, d.reply_token_expires_at, d.line_retry_key, d.attempts, d.over_cap,
      c.email, c.erased_at is not null as erased,
      lu.id as line_user_id, lu.line_uid, coalesce(lu.status = 'friend', false) as line_friend,
      d.multicast_request_id, mr.line_retry_key as multicast_retry_key,
      mr.body as multicast_body,
      d.line_user_id is not null as answers_person, d.reply_state, d.push_body,
      d.line_first_call_at, ${keyMayBeTaken} as line_key_used,
      ${keyMayBeTaken} and ${keyPastSafeAge} as line_key_expired
    from claimed d
    join customer c on c.id = d.customer_id
    left join lateral (
      select id, line_uid, status from line_user
      where customer_id = d.customer_id
      order by id = d.line_user_id desc nulls last, status = 'friend' desc, status_changed_at desc
      limit 1
    ) lu on true
    left join multicast_request mr on mr.id = d.multicast_request_id
    order by d.id
  `,
  )
  return result.rows
}

/** Where a delivery's reply stands (see the migration that adds `reply_state`). */
export type ReplyState = 'trying' | 'refused'

/** What became of one claimed delivery. */
export type DeliveryOutcome =
  | { id: string; status: 'sent'; channel: 'line' | 'email'; requestId: string | null }
  | { id: string; status: 'skipped'; reason: string }
  /** `keyUnused`: as for `pending` (a delivery parked after rate-limit 429s, rate-limit-backoff.ts). */
  | { id: string; status: 'failed' | 'quota_exceeded'; error: string; keyUnused?: true }
  /**
   * Try again: now (a retry of the job), at `sendAfter` (quiet hours, the weekly cap), or, when
   * `notStarted` (the job's send window closed before it went), in a job queued at once.
   * `rateLimited`: LINE answered a rate-limit 429 (with its Retry-After, if any) to the call
   * that sent it (`call`: a multicast chunk's id; none, a call for this delivery alone): the
   * send job backs the call's deliveries off together, or parks them (rate-limit-backoff.ts).
   * `keyUnused`: LINE refused the first request under the row's key (a rate-limit 429), so it
   * took nothing: the key's first call is forgotten and the request not kept (see keyMayBeTaken).
   */
  | {
      id: string
      status: 'pending'
      error?: string
      sendAfter?: Date
      notStarted?: true
      rateLimited?: { retryAfterMs: number | null; call?: string }
      keyUnused?: true
    }

/**
 * Which rows a job's claim took, each with its `attempts` as the claim left it: the claim token.
 * Only a claim raises `attempts`, so a row whose count moved on was claimed again since (its
 * lease ran out and another job took it), and is that job's.
 */
export type Claim = ReadonlyMap<string, number>

export function claimOf(rows: Pick<ClaimedDelivery, 'id' | 'attempts'>[]): Claim {
  return new Map(rows.map((r) => [r.id, r.attempts]))
}

/**
 * Records every outcome of a batch in one statement, on rows still `sending` under `claim` only:
 * a row claimed again since (this job outlived the lease) belongs to the job that took it.
 * Returns the ids written. `retryWithinMs`: how long the job's next try may take to come (its
 * backoff); rows left to it are not the sweeper's until then. A customer erased while the send
 * was under way keeps no error text (an SMTP reply names the address), nor a push kept for a
 * retry (it names them; no retry follows).
 */
export async function recordOutcomes(
  db: Db,
  outcomes: DeliveryOutcome[],
  claim: Claim,
  retryWithinMs = 0,
): Promise<Set<string>> {
  // Rows that may keep an error text or a push: failed or waiting for a retry.
  const mayKeep = outcomes.flatMap((o) =>
    ('error' in o && o.error) || o.status === 'pending' || o.status === 'failed' ? [o.id] : [],
  )
  if (mayKeep.length === 0) return writeOutcomes(db, outcomes, claim, retryWithinMs)
  return inTransaction(db, async (trx) => {
    const written = await writeOutcomes(trx, outcomes, claim, retryWithinMs)
    // Looked for by a statement of its own: one inside the update would see the customers as
    // they were when it began, and an erasure committing while it waited for the rows (the
    // erasure writes every delivery of the person) would get the error text after all.
    await dropErasedTraces(trx, mayKeep)
    return written
  })
}

/** Error texts and pushes kept on these deliveries of erased customers are removed. */
async function dropErasedTraces(db: Db, ids: string[]): Promise<void> {
  if (ids.length === 0) return
  await db
    .updateTable('delivery')
    .set({
      last_error: sql`case when last_error is null then null else ${ERROR_REMOVED}::text end`,
      push_body: null,
    })
    .where('id', 'in', ids)
    .where((eb) =>
      eb.or([
        eb('push_body', 'is not', null),
        eb.and([eb('last_error', 'is not', null), eb('last_error', '<>', ERROR_REMOVED)]),
      ]),
    )
    .where(({ exists, selectFrom }) =>
      exists(
        selectFrom('customer')
          .whereRef('customer.id', '=', 'delivery.customer_id')
          .where('customer.erased_at', 'is not', null),
      ),
    )
    .execute()
}

async function writeOutcomes(
  db: Db,
  outcomes: DeliveryOutcome[],
  claim: Claim,
  retryWithinMs: number,
): Promise<Set<string>> {
  if (outcomes.length === 0) return new Set()
  const col = <T>(pick: (o: DeliveryOutcome) => T | undefined) =>
    outcomes.map((o) => pick(o) ?? null)
  // LINE refused a new request under the key (a rate-limit 429): it took nothing under it, unless
  // it is a chunk's key and another job repeated the chunk meanwhile (this job outlived its lease
  // and that job took one of the chunk's rows over). So the key counts as unused only if every
  // row tagged with the chunk is still `sending` under this claim, read with the rows locked.
  const unused = sql<boolean>`(coalesce(o.key_unused, false)
    and not coalesce(d.multicast_request_id = any(in_doubt.chunks), false))`
  const result = await executePrepared(
    db,
    sql<{ id: string }>`
    with o as (
      select * from unnest(
        ${col((o) => o.id)}::uuid[], ${col((o) => claim.get(o.id))}::int[],
        ${col((o) => o.status)}::text[],
        ${col((o) => ('channel' in o ? o.channel : undefined))}::text[],
        ${col((o) => ('requestId' in o ? o.requestId : undefined))}::text[],
        ${col((o) => ('reason' in o ? o.reason : undefined))}::text[],
        ${col((o) => ('error' in o ? o.error?.slice(0, 2_000) : undefined))}::text[],
        ${col((o) => ('sendAfter' in o ? o.sendAfter?.toISOString() : undefined))}::timestamptz[],
        ${col((o) => ('keyUnused' in o ? o.keyUnused : undefined))}::boolean[]
      ) as o(id, attempts, status, channel, request_id, reason, error, send_after, key_unused)
    ),
    chunk_rows as materialized (
      select x.id, x.multicast_request_id as chunk, x.status, x.attempts from delivery x
      where x.multicast_request_id in (select y.multicast_request_id from delivery y
        join o on o.id = y.id where o.key_unused)
      order by x.id for update of x
    ),
    in_doubt as materialized (
      select coalesce(array_agg(distinct c.chunk), '{}') as chunks
      from chunk_rows c left join o on o.id = c.id
      where c.status <> 'sending' or c.attempts is distinct from o.attempts
    )
    update delivery d set
      status = o.status,
      channel = coalesce(o.channel, d.channel),
      line_request_id = case when o.channel = 'line' then o.request_id else d.line_request_id end,
      email_message_id = case when o.channel = 'email' then o.request_id else d.email_message_id end,
      skip_reason = coalesce(o.reason, d.skip_reason),
      last_error = case when o.status <> 'sent' then coalesce(o.error, d.last_error) end,
      sent_at = case when o.status = 'sent' then now() else d.sent_at end,
      -- Kept while LINE may have taken the push (a 5xx or timeout): its retry, even one that
      -- "deliveries retry" requeues after a failure, repeats it byte for byte under the same key.
      -- Dropped once sent, skipped, refused (a 400, a 429: LINE took nothing under the key), or
      -- past its key's life (it names the person, and no retry follows).
      push_body = case when not ${unused} and (o.status = 'pending'
          or (o.status = 'failed' and coalesce(o.error, '') not like ${`${LINE_REFUSED}%`}
            and o.error <> ${KEY_EXPIRED}))
        then d.push_body end,
      line_first_call_at = case when ${unused} then null else d.line_first_call_at end,
      send_after = coalesce(o.send_after, d.send_after),
      retry_at = case when o.status = 'pending' and o.send_after is null
        then now() + make_interval(secs => ${retryWithinMs / 1000}) end,
      updated_at = now()
    from o, in_doubt
    where d.id = o.id and d.status = 'sending' and d.attempts = o.attempts
    returning d.id
  `,
  )
  return new Set(result.rows.map((r) => r.id))
}

export type RecentMarketing = Map<string, { count: number; roomAt: Date | null }>

/**
 * Claims deliveries (see claimDeliveries) and, for their marketing customers, counts the
 * marketing sends of the rolling week. The weekly cap must hold across jobs running at once: the
 * customers are locked (advisory, in id order) before the claim, so a job counts what another
 * claimed first, and rows another job is sending count too, as do rows waiting for a retry, or
 * failed, whose request may have reached LINE.
 */
export async function claimDeliveriesWithMarketingCounts(
  db: Database,
  ids: string[],
  cap: number,
  leaseSeconds = SENDING_LEASE_SECONDS,
): Promise<{ rows: ClaimedDelivery[]; recent: RecentMarketing }> {
  if (cap === 0) return { rows: await claimDeliveries(db, ids, leaseSeconds), recent: new Map() }
  return db.transaction().execute(async (trx) => {
    const customers = await sql<{ customer_id: string }>`
      select distinct customer_id from delivery
      where id = any(${ids}::uuid[]) and category = 'marketing' and status in ('pending', 'sending')
      order by customer_id`.execute(trx)
    const customerIds = customers.rows.map((r) => r.customer_id)
    if (customerIds.length === 0)
      return { rows: await claimDeliveries(trx, ids, leaseSeconds), recent: new Map() }
    await sql`select pg_advisory_xact_lock(${MARKETING_LOCK}, hashtext(c::text))
      from unnest(${customerIds}::uuid[]) c order by c`.execute(trx)
    const rows = await claimDeliveries(trx, ids, leaseSeconds)
    // When each counted send reached, or may have reached, the person: a row waiting for a
    // retry after a 5xx or timeout counts from its first call (LINE may have delivered it then).
    const at = sql`coalesce(d.sent_at, d.line_first_call_at, now())`
    const recent = await sql<{ customer_id: string; count: number; room_at: Date | null }>`
      select customer_id, count(*)::int as count,
        (array_agg(${at} order by ${at} desc))[${cap}] + interval '7 days' as room_at
      from delivery d
      where customer_id = any(${customerIds}::uuid[]) and category = 'marketing'
        -- No branch on status = 'sending' alone: given one, Postgres OR-ed in the partial index
        -- of unfinished rows and read all of it (the whole campaign's pending rows, 50,000
        -- heap rows filtered away per call on a 100k campaign), so only the customer index fits.
        and status in ('sent', 'sending', 'pending', 'failed')
        -- A pending or failed row counts when its request may have reached LINE: LINE may have
        -- delivered it, and its retry (a failed one's after 'deliveries retry') goes whatever the
        -- cap says (mayHaveReachedLine), so another send must not take its place.
        and (status not in ('pending', 'failed') or ${keyMayBeTaken})
        and ${at} > now() - interval '7 days'
        -- Only the rows this claim took (they count in the batch): one the job names that
        -- another job is sending counts here, or both jobs would see room for it.
        and not (status = 'sending' and id = any(${rows.map((r) => r.id)}::uuid[]))
      group by customer_id`.execute(trx)
    return {
      rows,
      recent: new Map(
        recent.rows.map((r) => [r.customer_id, { count: r.count, roomAt: r.room_at }]),
      ),
    }
  })
}

/** Advisory-lock namespace of the weekly marketing cap (first key of the two-key form). */
const MARKETING_LOCK = 0x6b7a6361

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
 * After the last retry: deliveries a job left waiting for a retry are failed, keeping their last
 * try's reason when they have one (else the job's error); returns how many. Given the last try's
 * claim, only rows that claim left (not claimed again since); given ids, any of them.
 */
export async function failUnfinishedDeliveries(
  db: Db,
  left: string[] | Claim,
  error: string,
): Promise<number> {
  const ids = Array.isArray(left) ? left : [...left.keys()]
  const attempts = Array.isArray(left) ? ids.map(() => null) : [...left.values()]
  if (ids.length === 0) return 0
  // A push kept for its retry stays (LINE may have taken it): `deliveries retry` repeats it under
  // the same key, never a new rendering; not an erased customer's. The last try's own reason (a refused SMTP login, LINE's
  // 500) says more than the job's.
  return inTransaction(db, async (trx) => {
    const result = await sql<{ id: string }>`
      update delivery d set status = 'failed',
        last_error = coalesce(d.last_error, ${error.slice(0, 2_000)}), updated_at = now()
      from unnest(${ids}::uuid[], ${attempts}::int[]) as l(id, attempts)
      where d.id = l.id and (l.attempts is null or d.attempts = l.attempts)
        and d.status = 'pending' and d.attempts > 0 and d.send_after <= now()
      returning d.id
    `.execute(trx)
    // An erased customer's keeps neither (see recordOutcomes).
    await dropErasedTraces(
      trx,
      result.rows.map((r) => r.id),
    )
    return result.rows.length
  })
}

/**
 * Due deliveries nobody is working on: pending ones older than the grace (their job was lost)
 * and not waiting for their job's next try (a LINE 5xx: retry_at), or whose try is that late,
 * and ones left in `sending` past the lease (a crashed worker). Oldest change first, from after
 * the row `after` (the last of the page before): each page is a range of delivery_unfinished_idx
 * (by time: a campaign's rows share one, and a page inside such a run reads it from its start),
 * and none is read twice (a row written meanwhile moves past the end).
 */
export async function listStaleDeliveries(
  db: Db,
  olderThan: Date,
  limit: number,
  after?: Keyset,
  leaseSeconds = SENDING_LEASE_SECONDS,
) {
  const leaseStart = sql<Date>`now() - make_interval(secs => ${leaseSeconds})`
  return db
    .selectFrom('delivery')
    .select(['id', sql<string>`updated_at::text`.as('at')])
    .where(sql<boolean>`status in ('pending', 'sending')`)
    .where('updated_at', '<', sql<Date>`greatest(${olderThan}::timestamptz, ${leaseStart})`)
    .where((eb) =>
      eb.or([
        eb.and([
          eb('status', '=', 'pending'),
          eb('updated_at', '<', olderThan),
          eb.or([eb('retry_at', 'is', null), eb('retry_at', '<', olderThan)]),
        ]),
        eb.and([eb('status', '=', 'sending'), eb('updated_at', '<', leaseStart)]),
      ]),
    )
    .where('send_after', '<=', sql<Date>`now()`)
    .where(afterKeyset('updated_at', after))
    .orderBy('updated_at')
    .orderBy('id')
    .limit(limit)
    .execute()
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

/**
 * How a reply that may have arrived is failed (a timeout or 5xx, or a worker that stopped before
 * recording the outcome; replies have no retry key): never sent again, not even by
 * `kizuna deliveries retry`.
 */
export const REPLY_OUTCOME_UNKNOWN = 'reply outcome unknown'

/**
 * How an email that may have arrived is failed: its whole message went to the SMTP server and no
 * answer came (a timeout, a dropped connection, the email's deadline). A mail system does not
 * drop a second copy for its Message-ID, so, as a reply, it is never sent again, not even by
 * `kizuna deliveries retry`.
 */
export const EMAIL_OUTCOME_UNKNOWN = 'email outcome unknown'

/** Statuses an operator may send back to the queue (`kizuna deliveries retry`). */
export const RETRYABLE_STATUSES = ['quota_exceeded', 'failed'] as const
export type RetryableStatus = (typeof RETRYABLE_STATUSES)[number]

/**
 * LINE honours a retry key for 24 hours from its first request (LINE-API.md §2.4). A delivery
 * whose request may have reached LINE goes again under its key only while the key is younger than
 * this (checked by `kizuna deliveries retry` and again when it is about to go): the margin covers
 * the wait for the sweeper, a queue backlog and the call itself.
 */
export const RETRY_KEY_SAFE_HOURS = 23

/**
 * How a delivery is failed instead of going to LINE again under a retry key LINE may have
 * accepted more than RETRY_KEY_SAFE_HOURS ago: LINE takes a key older than 24 hours as a new
 * request (LINE-API.md §2.4), so whatever held it up (retries, quiet hours, the weekly cap,
 * `kizuna deliveries retry`), the person could get the message twice.
 */
export const KEY_EXPIRED =
  `retry key expired: the first request may have reached LINE over ${RETRY_KEY_SAFE_HOURS} ` +
  'hours ago; not sent again, to never send twice'

/**
 * How a delivery LINE refused is failed (`LINE 400: message details`, from line-send.ts): LINE
 * validated the request and took nothing under its key (a key it had accepted gets a 409).
 * Other LINE answers (401, 403, 404) say nothing about an earlier request under the key.
 */
const LINE_REFUSED = 'LINE 400:'
/**
 * How a delivery whose template or variables could not be rendered is failed. No request went
 * out in that attempt, but an earlier one may have (a chunk or push that timed out, rendered again
 * on its retry): that is told by `line_first_call_at`, not by this.
 */
export const TEMPLATE_FAILED = 'template:'

/**
 * A request under the delivery's retry key (`d`: its own, or its chunk's) may have reached LINE:
 * one went out (`line_first_call_at`, cleared when a requeue finds LINE refused the last one) and
 * LINE's last answer was not a 400 (a row requeued before requeues cleared it).
 */
const keyMayBeTaken = sql<boolean>`(d.line_first_call_at is not null
  and coalesce(d.last_error, '') not like ${`${LINE_REFUSED}%`})`
/** The key's first request went out more than RETRY_KEY_SAFE_HOURS ago (the database's clock). */
const keyPastSafeAge = sql<boolean>`(d.line_first_call_at
  < now() - make_interval(hours => ${RETRY_KEY_SAFE_HOURS}))`

export type RequeueResult = {
  /** Put back to pending. */
  requeued: number
  /**
   * Failed ones left as they are: a request under their key may have reached LINE (a 5xx or
   * timeout, never a clear refusal) more than RETRY_KEY_SAFE_HOURS ago, and LINE would take the
   * same key now as a new request.
   */
  keyExpired: number
}

/**
 * Puts parked deliveries back to pending (the month's quota renewed, a template fixed): the
 * sweeper queues them at its next pass. Not for erased customers, nor replies or emails whose
 * outcome is unknown. Each keeps its retry key and the push or chunk request it stored (a fixed
 * template does not change one that may have reached LINE), so a request LINE accepted within
 * the last 24 hours cannot go out twice (LINE answers 409). After
 * that LINE takes the key as new: a failed delivery whose request may have reached LINE (a LINE
 * call went out under its key and was not clearly refused) more than RETRY_KEY_SAFE_HOURS ago
 * stays failed and is counted in `keyExpired`; a template failure on a retry after such a call is
 * no exception.
 * Deliveries LINE refused (a 400, the monthly quota's 429) go again at any age, their first call
 * forgotten: LINE took nothing under the key, so its 24 hours start with the next request. Those
 * that never reached a LINE call go again at any age too.
 */
export async function requeueDeliveries(
  db: Db,
  filter: { status: RetryableStatus; kind?: string },
): Promise<RequeueResult> {
  const held =
    filter.status === 'failed' ? sql<boolean>`${keyMayBeTaken} and ${keyPastSafeAge}` : sql`false`
  // LINE answered the last request under the key with a refusal: it took nothing under it.
  const refused =
    filter.status === 'quota_exceeded'
      ? sql<boolean>`true`
      : sql<boolean>`coalesce(d.last_error, '') like ${`${LINE_REFUSED}%`}`
  const result = await sql<{ requeued: number; key_expired: number }>`
    with candidates as (
      select id, ${held} as held, ${refused} as refused from delivery d
      where status = ${filter.status}
        and (${filter.kind ?? null}::text is null or kind = ${filter.kind ?? null})
        and customer_id in (select id from customer where erased_at is null)
        -- A reply or email whose answer was lost may have arrived: sending it again could send
        -- it twice.
        and (${filter.status} <> 'failed'
          or (coalesce(last_error, '') not like ${`${REPLY_OUTCOME_UNKNOWN}%`}
            and coalesce(last_error, '') not like ${`${EMAIL_OUTCOME_UNKNOWN}%`}))
      for update
    ),
    requeued as (
      update delivery d
      set status = 'pending', send_after = least(d.send_after, now()), updated_at = now(),
        -- A fresh set of LINE_RATE_LIMIT_TRIES, whatever failed it.
        rate_limit_tries = 0,
        -- The key's 24 hours start again with its next request (noted by storePushBodies or
        -- createMulticastRequest). A chunk refused is not sent again (see refusedChunk).
        line_first_call_at = case when c.refused then null else d.line_first_call_at end
      from candidates c
      where d.id = c.id and not c.held
      returning d.id
    )
    select (select count(*) from requeued)::int as requeued,
      (select count(*) from candidates where held)::int as key_expired
  `.execute(db)
  const row = result.rows[0]!
  return { requeued: row.requeued, keyExpired: row.key_expired }
}
