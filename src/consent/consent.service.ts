import { withCurrentCustomer } from '../customers/surviving-customer.service.ts'
import type { Db } from '../platform/db.ts'
import { AppError, invalidField } from '../platform/errors.ts'
import {
  type ConsentDecision,
  type ConsentWrite,
  type ConsentWriter,
  consentGrantedSql,
  copyConsentRows,
  deleteConsentRows,
  isConsentHistoryEntryOf,
  listConsentDecisions,
  listConsentHistoryRows,
  listConsentRows,
  upsertConsentRows,
} from './consent.repo.ts'
import {
  BEFORE_HINT,
  CONSENT_CATEGORIES,
  CONSENT_CHANNELS,
  type ConsentCategory,
  type ConsentChange,
  type ConsentChannel,
  type ConsentHistoryPage,
  type ConsentSource,
  type Consents,
  DEFAULT_CONSENTS,
} from './consent.schemas.ts'

export type { Consents }
/** For another module's statement that acts on a consent it reads (an email's send-time check). */
export { consentGrantedSql, DEFAULT_CONSENTS }

function defaults(): Consents {
  return {
    transactional: { ...DEFAULT_CONSENTS.transactional },
    marketing: { ...DEFAULT_CONSENTS.marketing },
  }
}

/**
 * Every customer's consents, rows over defaults, in one query for the whole list (the delivery
 * engine asks for batches of hundreds). Each id given has an entry, known or not.
 */
export async function loadConsents(db: Db, customerIds: string[]): Promise<Map<string, Consents>> {
  const unique = [...new Set(customerIds)]
  const result = new Map<string, Consents>(unique.map((id) => [id, defaults()]))
  for (const row of await listConsentRows(db, unique)) {
    const consents = result.get(row.customer_id)
    if (consents) consents[row.category][row.channel] = row.granted
  }
  return result
}

export async function loadConsent(db: Db, customerId: string): Promise<Consents> {
  return (await loadConsents(db, [customerId])).get(customerId) ?? defaults()
}

const ERASED = 'this customer was erased on request'

/**
 * A customer's consents as staff see them (the admin API), for the customer `customerId` leads
 * to (merges followed), read with it share-locked (withCurrentCustomer): a merge committing
 * meanwhile is followed to its survivor, not answered with the merged-away id and the defaults
 * (marketing on LINE for someone who had opted out). NOT_FOUND for an unknown customer; GONE
 * once erased, as the tags and the identity lookup are.
 */
export function getCustomerConsent(
  db: Db,
  customerId: string,
): Promise<{ customerId: string; consent: Consents }> {
  return withCurrentCustomer(db, customerId, async (trx, customer) => {
    if (customer.erased_at) throw new AppError('GONE', ERASED)
    return { customerId: customer.id, consent: await loadConsent(trx, customer.id) }
  })
}

/**
 * Grants or revokes one (category, channel) for a customer. A merged customer's change goes to
 * the customer it was merged into; an unknown customer is NOT_FOUND. An erased one is GONE to
 * staff (source `admin`, as every admin API answers for them) and on a grant; the person's own
 * revoke (an old email's unsubscribe link) still goes through. Returns the customer changed and
 * its consents afterwards.
 */
export function setConsent(
  db: Db,
  customerId: string,
  change: ConsentChange,
): Promise<{ customerId: string; consent: Consents }> {
  const { category, channel, granted, ...writer } = change
  return writeConsents(db, customerId, [{ category, channel, granted }], writer)
}

/**
 * Revokes these categories by email at once (an email's unsubscribe link), as setConsent revokes
 * one: for the customer `customerId` leads to, an erased one's too.
 */
export function withdrawEmailConsent(
  db: Db,
  customerId: string,
  categories: readonly ConsentCategory[],
  source: ConsentSource,
): Promise<{ customerId: string; consent: Consents }> {
  const writes = categories.map((category) => ({
    category,
    channel: 'email' as const,
    granted: false,
  }))
  return writeConsents(db, customerId, writes, { source })
}

/** setConsent's rules for several writes in one transaction. */
function writeConsents(
  db: Db,
  customerId: string,
  writes: ConsentWrite[],
  writer: ConsentWriter,
): Promise<{ customerId: string; consent: Consents }> {
  return withCurrentCustomer(db, customerId, async (trx, customer) => {
    if (customer.erased_at && (writes.some((w) => w.granted) || writer.source === 'admin')) {
      throw new AppError('GONE', ERASED)
    }
    await upsertConsentRows(trx, customer.id, writes, writer)
    return { customerId: customer.id, consent: await loadConsent(trx, customer.id) }
  })
}

/**
 * Grants or revokes marketing on every channel (an import's `marketing_consent`, an erasure),
 * in the caller's transaction, for a customer the caller holds. Returns whether a row changed.
 */
export async function setMarketingConsent(
  trx: Db,
  customerId: string,
  granted: boolean,
  source: ConsentSource,
): Promise<boolean> {
  const writes = CONSENT_CHANNELS.map((channel) => ({
    category: 'marketing' as const,
    channel,
    granted,
  }))
  return (await upsertConsentRows(trx, customerId, writes, { source })) > 0
}

/**
 * Whether the merged customer's row is the one a merge keeps for the survivor, whose row (if
 * any) holds `survivorGranted`: the more restrictive value; between two refusals, the stronger
 * decision (the person's or staff's over an import's, which an import may grant again, and any
 * row over the default), then the later one (by when the person tapped, else when it was
 * written), so a postback tapped before it and processed after the merge stays overtaken.
 * Between two grants the survivor's stands (a grant's source decides nothing later).
 */
function mergedRowWins(
  merged: ConsentDecision,
  survivor: ConsentDecision | undefined,
  survivorGranted: boolean,
): boolean {
  if (merged.granted !== survivorGranted) return !merged.granted
  if (merged.granted) return false
  const strength = (row: ConsentDecision | undefined) =>
    row === undefined ? 0 : row.source === 'import' ? 1 : 2
  if (strength(merged) !== strength(survivor)) return strength(merged) > strength(survivor)
  const time = (row: ConsentDecision) => (row.decided_at ?? row.updated_at).getTime()
  return survivor !== undefined && time(merged) > time(survivor)
}

/**
 * For a merge (the merge service calls it with both customers locked): the survivor keeps, per
 * (category, channel), the more restrictive of the two consents, defaults counting as values.
 * Where the merged customer's row is kept (mergedRowWins) it is copied as it was decided (its
 * source and times: an import's refusal stays one an import may grant again, the person's does
 * not); where its default refuses what the survivor's row grants, the survivor's row is
 * withdrawn by the merge. Each change is recorded in the survivor's history as `merge`. The
 * merged customer's rows are removed: it is only a pointer from now on. Its history stays under
 * its id, listed with the survivor's (listConsentHistory), as merge_audit keeps both ids.
 */
export async function mergeConsents(trx: Db, survivorId: string, mergedId: string): Promise<void> {
  const rows = await listConsentDecisions(trx, [survivorId, mergedId])
  const rowOf = (customerId: string, category: ConsentCategory, channel: ConsentChannel) =>
    rows.find(
      (r) => r.customer_id === customerId && r.category === category && r.channel === channel,
    )
  const copies: { category: ConsentCategory; channel: ConsentChannel }[] = []
  const withdrawals: ConsentWrite[] = []
  for (const category of CONSENT_CATEGORIES) {
    for (const channel of CONSENT_CHANNELS) {
      const survivor = rowOf(survivorId, category, channel)
      const merged = rowOf(mergedId, category, channel)
      const byDefault = DEFAULT_CONSENTS[category][channel]
      const survivorGranted = survivor?.granted ?? byDefault
      if (merged && mergedRowWins(merged, survivor, survivorGranted)) {
        copies.push({ category, channel })
      } else if (!merged && survivorGranted && !byDefault) {
        withdrawals.push({ category, channel, granted: false })
      }
    }
  }
  await copyConsentRows(trx, mergedId, survivorId, 'merge', copies)
  await upsertConsentRows(trx, survivorId, withdrawals, { source: 'merge' })
  await deleteConsentRows(trx, mergedId)
}

/**
 * A customer split off another (a LINE account unlinked) starts with the other's consent rows:
 * never more consent than the person gave. Recorded in its history as `unlink`.
 */
export async function copyConsents(trx: Db, fromId: string, toId: string): Promise<void> {
  await copyConsentRows(trx, fromId, toId, 'unlink')
}

/** One entry of a consent history (`GET /api/customers/:id/consent/history`). */
export type ConsentHistoryEntry = {
  id: string
  /** The customer it was written for: the one asked about, or one merged into it. */
  customerId: string
  category: ConsentCategory
  channel: ConsentChannel
  granted: boolean
  /** The value before (the default where there was no row); null when not known (see README). */
  previous: boolean | null
  source: ConsentSource
  /** The API key that made the change (staff's), by the names `kizuna keys list` shows. */
  apiKey: { id: string; prefix: string | null; label: string | null } | null
  /** When the person tapped (a LINE postback: LINE's event time); null for other writes. */
  decidedAt: Date | null
  recordedAt: Date
}

/**
 * A customer's consent history, newest first, a page at a time (`next`: the `before` of the
 * next page, null after the last): every value written for it and for the customers merged
 * into it. For the customer `customerId` leads to (merges followed, read with it share-locked
 * as getCustomerConsent reads), erased or not: the history holds no personal data and is the
 * record of consent an erasure keeps. NOT_FOUND for an unknown customer; BAD_REQUEST naming
 * `before` when it is no entry of this history (another customer's, or none: an empty page would
 * say the history ended).
 */
export function listConsentHistory(
  db: Db,
  customerId: string,
  page: ConsentHistoryPage,
): Promise<{ customerId: string; history: ConsentHistoryEntry[]; next: string | null }> {
  return withCurrentCustomer(db, customerId, async (trx, customer) => {
    if (
      page.before !== undefined &&
      !(await isConsentHistoryEntryOf(trx, customer.id, page.before))
    ) {
      throw invalidField(
        'before',
        `not an entry of this customer's consent history (${BEFORE_HINT})`,
      )
    }
    const rows = await listConsentHistoryRows(trx, customer.id, page)
    const history = rows.slice(0, page.limit).map(
      (r): ConsentHistoryEntry => ({
        id: r.id,
        customerId: r.customer_id,
        category: r.category as ConsentCategory,
        channel: r.channel as ConsentChannel,
        granted: r.granted,
        previous: r.previous,
        source: r.source as ConsentSource,
        apiKey: r.api_key_id
          ? { id: r.api_key_id, prefix: r.api_key_prefix, label: r.api_key_label }
          : null,
        decidedAt: r.decided_at,
        recordedAt: r.recorded_at,
      }),
    )
    const next = rows.length > page.limit ? (history.at(-1)?.id ?? null) : null
    return { customerId: customer.id, history, next }
  })
}
