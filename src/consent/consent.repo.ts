import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'
import type {
  ConsentCategory,
  ConsentChannel,
  ConsentDecided,
  ConsentSource,
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

export type ConsentWrite = { category: ConsentCategory; channel: ConsentChannel; granted: boolean }

/**
 * Writes these consent rows for the customer; a row that already holds the same value is left
 * alone (its source and time stay), but by staff (source `admin`), whose decision is stamped
 * again. A LINE postback carries when the person tapped (`decided`): it applies only over a
 * choice made before it. Over their own earlier tap (`decided_at`, by LINE's clock) that is
 * LINE's time, so postbacks processed out of order end with the last one tapped. Over anyone else's change (staff, an import, an unsubscribe: `updated_at`, by the
 * database's clock) the two clocks may disagree, and the restrictive choice wins: a grant
 * applies only when the change is older than the tap by both the tap's time and the time the
 * event was stored, a withdrawal when it is older by either (a database clock running ahead of
 * LINE's never makes an opt-out tapped after the change look older; one running behind never
 * lets an opt-in tapped before it undo it). Returns how many rows were inserted or changed.
 */
export async function upsertConsentRows(
  db: Db,
  customerId: string,
  writes: ConsentWrite[],
  source: ConsentSource,
  decided: ConsentDecided | null = null,
): Promise<number> {
  if (writes.length === 0) return 0
  const decidedAt = decided?.at ?? null
  const rows = await db
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
                // Staff deciding the value the row already holds decide it again, now: a tap
                // made before (processed late) must find this decision newer than itself, or an
                // opt-in tapped before staff opted the person out once more would undo it.
                eb('excluded.source', '=', 'admin'),
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
    .returning('customer_id')
    .execute()
  return rows.length
}

export async function deleteConsentRows(db: Db, customerId: string): Promise<void> {
  await db.deleteFrom('consent').where('customer_id', '=', customerId).execute()
}

/** Copies the rows of one customer to another (which has none yet), keeping their sources. */
export async function copyConsentRows(db: Db, fromId: string, toId: string): Promise<void> {
  await sql`
    insert into consent (customer_id, category, channel, granted, source, decided_at)
    select ${toId}, category, channel, granted, source, decided_at
    from consent where customer_id = ${fromId}
    on conflict (customer_id, category, channel) do nothing`.execute(db)
}
