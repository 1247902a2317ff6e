import { type ExpressionBuilder, type RawBuilder, sql } from 'kysely'
import { lockInSpace } from '../platform/advisory-locks.ts'
import type { DB, Db } from '../platform/db.ts'
import {
  CONSENT_CATEGORIES,
  CONSENT_CHANNELS,
  type ConsentCategory,
  type ConsentChannel,
  type ConsentDecided,
  type ConsentHistoryPage,
  type ConsentSource,
  DEFAULT_CONSENTS,
} from './consent.schemas.ts'

export type ConsentRow = {
  customer_id: string
  category: ConsentCategory
  channel: ConsentChannel
  granted: boolean
}

/** Every consent row of these customers, in one query however many there are. */
export async function listConsentRows(db: Db, customerIds: string[]): Promise<ConsentRow[]> {
  if (customerIds.length === 0) return []
  const rows = await db
    .selectFrom('consent')
    .select(['customer_id', 'category', 'channel', 'granted'])
    .where(sql<boolean>`customer_id = any(${customerIds}::uuid[])`)
    .execute()
  return rows as ConsentRow[]
}

/** A consent row with what decides how a later write weighs it: its source and times. */
export type ConsentDecision = ConsentRow & {
  source: ConsentSource
  decided_at: Date | null
  updated_at: Date
}

/** Every consent row of these customers, with their sources and times. */
export async function listConsentDecisions(
  db: Db,
  customerIds: string[],
): Promise<ConsentDecision[]> {
  const rows = await db
    .selectFrom('consent')
    .select(['customer_id', 'category', 'channel', 'granted', 'source', 'decided_at', 'updated_at'])
    .where('customer_id', 'in', customerIds)
    .execute()
  return rows as ConsentDecision[]
}

export type ConsentWrite = { category: ConsentCategory; channel: ConsentChannel; granted: boolean }

/** Who writes: kept on the row (source, decided) and in its history (the API key too). */
export type ConsentWriter = {
  source: ConsentSource
  decided?: ConsentDecided | null
  apiKeyId?: string | null
}

/**
 * Whether a customer allows a category on `channel` (its row, else the default), as an SQL
 * expression over the caller's columns (`customerId`, `category`: qualified names such as
 * `d.customer_id`): for a check made in the very statement that acts on it.
 */
export function consentGrantedSql(
  customerId: string,
  category: string,
  channel: ConsentChannel,
): RawBuilder<boolean> {
  const defaults = CONSENT_CATEGORIES.map(
    (c) => sql`when ${sql.lit(c)} then ${sql.lit(DEFAULT_CONSENTS[c][channel])}`,
  )
  return sql<boolean>`coalesce(
    (select granted from consent where customer_id = ${sql.ref(customerId)}
      and category = ${sql.ref(category)} and channel = ${sql.lit(channel)}),
    case ${sql.ref(category)} ${sql.join(defaults, sql` `)} else false end)`
}

/** The value a customer without a row for `alias`'s (category, channel) has: the default. */
function defaultOf(alias: string): RawBuilder<boolean> {
  const whens = CONSENT_CATEGORIES.flatMap((category) =>
    CONSENT_CHANNELS.map(
      (channel) =>
        sql`when ${sql.ref(`${alias}.category`)} = ${category}
          and ${sql.ref(`${alias}.channel`)} = ${channel}
          then ${sql.lit(DEFAULT_CONSENTS[category][channel])}`,
    ),
  )
  return sql<boolean>`case ${sql.join(whens, sql` `)} end`
}

/**
 * Writes these consent rows for the customer; a row that already holds the same value is left
 * alone (its source and time stay), but by a staff withdrawal (source `admin`, not granted),
 * which is stamped again, and by a withdrawal other than an import's over an import's
 * withdrawal, which takes it over (an import grants only over its own rows). A LINE postback carries when the person tapped (`decided`): it
 * applies only over a choice made before it. Over their own earlier tap (`decided_at`, by
 * LINE's clock) that is LINE's time, so postbacks processed out of order end with the last one
 * tapped. Over anyone else's change (staff, an import, an unsubscribe: `updated_at`, by the
 * database's clock) the two clocks may disagree, and the restrictive choice wins: a grant
 * applies only when the change is older than the tap by both the tap's time and the time the
 * event was stored, a withdrawal when it is older by either (a database clock running ahead of
 * LINE's never makes an opt-out tapped after the change look older; one running behind never
 * lets an opt-in tapped before it undo it).
 *
 * Each row written (a change, or the same value decided again) is appended to consent_history
 * in the same statement, with the value it replaced (the default where there was no row), the
 * writer and the API key; a row left alone records nothing, so every entry is a decision the
 * row took, at the time it took it. In the caller's transaction: the customer's consent writes
 * queue on a lock (a customer is only share-locked by them), so the value read as the one
 * replaced is the last one committed. Returns how many rows were inserted or changed.
 */
export async function upsertConsentRows(
  trx: Db,
  customerId: string,
  writes: ConsentWrite[],
  writer: ConsentWriter,
): Promise<number> {
  if (writes.length === 0) return 0
  const { source } = writer
  const decided = writer.decided ?? null
  const decidedAt = decided?.at ?? null
  await lockInSpace(trx, 'consent', customerId)
  const upsert = trx
    .insertInto('consent')
    .values(writes.map((w) => ({ customer_id: customerId, ...w, source, decided_at: decidedAt })))
    .onConflict((oc) =>
      oc
        .columns(['customer_id', 'category', 'channel'])
        .doUpdateSet({
          granted: (eb) => eb.ref('excluded.granted'),
          source: (eb) => eb.ref('excluded.source'),
          decided_at: (eb) => eb.ref('excluded.decided_at'),
          updated_at: sql`now()`,
        })
        .where((eb) =>
          decided
            ? // Newer than the row's choice; the same value too, so that an older opposite
              // tap processed later finds the newer time.
              eb.or([
                eb('consent.decided_at', '<', decided.at),
                eb.and([
                  eb('consent.decided_at', 'is', null),
                  eb(
                    'consent.updated_at',
                    '<',
                    sql<Date>`case when excluded.granted
                    then least(${decided.at}::timestamptz, ${decided.receivedAt}::timestamptz)
                    else greatest(${decided.at}::timestamptz, ${decided.receivedAt}::timestamptz)
                    end`,
                  ),
                ]),
              ])
            : eb.or([
                // Staff withdrawing what the row already withdraws decide it again, now: a tap
                // made before (processed late) must find this decision newer than itself, or an
                // opt-in tapped before staff opted the person out once more would undo it. Not a
                // grant: re-stamped, the standing grant would look newer than an opt-out tapped
                // since it (a CRM sync saying yes again), which would then not apply.
                eb.and([eb('excluded.source', '=', 'admin'), eb('excluded.granted', '=', false)]),
                // The person (an unsubscribe) or staff refusing what an import refused take the
                // refusal over: left the import's, the next file saying yes would grant it again.
                eb.and([
                  eb('excluded.granted', '=', false),
                  eb('excluded.source', '<>', 'import'),
                  eb('consent.granted', '=', false),
                  eb('consent.source', '=', 'import'),
                ]),
                eb.and([
                  // Others leave a row holding the same value alone. An import run again (the
                  // same file, a nightly export) decides nothing new: re-stamped, the person's
                  // or staff's refusal would become the import's own row (which a later file
                  // saying yes may grant over), and a tap made since the file was exported
                  // would look older than it.
                  eb('consent.granted', 'is distinct from', eb.ref('excluded.granted')),
                  // A bulk import may always withdraw consent, but grants only over its own
                  // rows: it never re-grants what the person (or staff) refused.
                  eb.or([
                    eb('excluded.source', '<>', 'import'),
                    eb('excluded.granted', '=', false),
                    eb('consent.source', '=', 'import'),
                  ]),
                ]),
              ]),
        ),
    )
    .returning(['customer_id', 'category', 'channel', 'granted', 'source', 'decided_at'])
  // Every part of one statement reads the table as it was before it: `replaced` is the row the
  // upsert overwrote.
  const recorded = await trx
    .with('written', () => upsert)
    .insertInto('consent_history')
    .columns([
      'customer_id',
      'category',
      'channel',
      'granted',
      'previous',
      'source',
      'api_key_id',
      'decided_at',
    ])
    .expression((eb) =>
      eb
        .selectFrom('written')
        .leftJoin('consent as replaced', (join) =>
          join
            .onRef('replaced.customer_id', '=', 'written.customer_id')
            .onRef('replaced.category', '=', 'written.category')
            .onRef('replaced.channel', '=', 'written.channel'),
        )
        .select([
          'written.customer_id',
          'written.category',
          'written.channel',
          'written.granted',
          sql<boolean>`coalesce(replaced.granted, ${defaultOf('written')})`.as('previous'),
          'written.source',
          sql<string | null>`${writer.apiKeyId ?? null}::uuid`.as('api_key_id'),
          'written.decided_at',
        ]),
    )
    .returning('id')
    .execute()
  return recorded.length
}

export async function deleteConsentRows(db: Db, customerId: string): Promise<void> {
  await db.deleteFrom('consent').where('customer_id', '=', customerId).execute()
}

/**
 * Copies the rows of one customer to another as they are: value, source and the times of the
 * decision (`decided_at`, `updated_at`), so a postback tapped before the copy and processed after
 * it is weighed against the decision copied, not against the copy. All of them (an unlink: the
 * new customer has none yet), or those of `only` (a merge), each replacing the row `toId` had.
 * Each copy is recorded in `toId`'s consent history as `as`, over the value it replaced (the
 * default where there was none). Returns how many were copied.
 */
export async function copyConsentRows(
  trx: Db,
  fromId: string,
  toId: string,
  as: Extract<ConsentSource, 'unlink' | 'merge'>,
  only?: { category: ConsentCategory; channel: ConsentChannel }[],
): Promise<number> {
  if (only?.length === 0) return 0
  await lockInSpace(trx, 'consent', toId)
  const keys = only?.map((k) => sql`(${k.category}, ${k.channel})`)
  const { rows } = await sql<{ n: string }>`
    with copied as (
      insert into consent (customer_id, category, channel, granted, source, decided_at, updated_at)
      select ${toId}, category, channel, granted, source, decided_at, updated_at
      from consent where customer_id = ${fromId}
      ${keys ? sql`and (category, channel) in (${sql.join(keys)})` : sql``}
      on conflict (customer_id, category, channel) do update set
        granted = excluded.granted, source = excluded.source,
        decided_at = excluded.decided_at, updated_at = excluded.updated_at
      returning customer_id, category, channel, granted, decided_at),
    recorded as (
      insert into consent_history
        (customer_id, category, channel, granted, previous, source, decided_at)
      select copied.customer_id, copied.category, copied.channel, copied.granted,
        coalesce(replaced.granted, ${defaultOf('copied')}), ${as}, copied.decided_at
      from copied left join consent replaced on replaced.customer_id = copied.customer_id
        and replaced.category = copied.category and replaced.channel = copied.channel
      returning 1)
    select count(*) as n from recorded`.execute(trx)
  return Number(rows[0]?.n ?? 0)
}

/** `h.customer_id` is the customer's or that of one merged into it. */
function historyOf(
  eb: ExpressionBuilder<DB & { h: DB['consent_history'] }, 'h'>,
  customerId: string,
) {
  return eb.or([
    eb('h.customer_id', '=', customerId),
    eb(
      'h.customer_id',
      'in',
      eb.selectFrom('customer').select('id').where('merged_into_id', '=', customerId),
    ),
  ])
}

/** Whether `id` is an entry of the consent history listConsentHistoryRows lists. */
export async function isConsentHistoryEntryOf(
  db: Db,
  customerId: string,
  id: string,
): Promise<boolean> {
  const found = await db
    .selectFrom('consent_history as h')
    .select('h.id')
    .where('h.id', '=', id)
    .where((eb) => historyOf(eb, customerId))
    .executeTakeFirst()
  return found !== undefined
}

/**
 * A page of the consent history of a customer and of the customers merged into it, newest
 * first, after the row `before` (when given); `limit + 1` rows, so the caller sees whether more
 * follow. Each with its API key's prefix and label (the names `kizuna keys list` shows).
 */
export async function listConsentHistoryRows(db: Db, customerId: string, page: ConsentHistoryPage) {
  return db
    .selectFrom('consent_history as h')
    .leftJoin('api_key as k', 'k.id', 'h.api_key_id')
    .select([
      'h.id',
      'h.customer_id',
      'h.category',
      'h.channel',
      'h.granted',
      'h.previous',
      'h.source',
      'h.api_key_id',
      'k.prefix as api_key_prefix',
      'k.label as api_key_label',
      'h.decided_at',
      'h.recorded_at',
    ])
    .where((eb) => historyOf(eb, customerId))
    .$if(page.before !== undefined, (qb) =>
      qb.where(
        sql<boolean>`(h.recorded_at, h.id) <
          (select recorded_at, id from consent_history where id = ${page.before})`,
      ),
    )
    .orderBy('h.recorded_at', 'desc')
    .orderBy('h.id', 'desc')
    .limit(page.limit + 1)
    .execute()
}
