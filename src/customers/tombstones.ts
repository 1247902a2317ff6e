import { createHash, createHmac } from 'node:crypto'
import { TOMBSTONE } from '../identity/tombstone.ts'
import type { Database, Db } from '../platform/db.ts'
import { getAppSecret } from '../platform/secrets.ts'
import { widthFormsOf } from './identity-values.ts'

/**
 * Identity kinds that keep a tombstone (a hash of kind and value, never the value) pointing at
 * the erased customer:
 * - cards, so a later scan of the card answers 410 and the card is never bound again;
 * - the shop's account id and the email, so re-running an old customer import cannot re-create
 *   the person from the shop's data (the importer refuses a row whose id is only a tombstone).
 *   Keeping a hash to honour the erasure is the usual suppression list; a person who comes back
 *   and proves the email themselves (account link) may use it again: a live identity wins;
 * - the phone (SHARED_KINDS), for an import row naming no one but it (below).
 */
export const TOMBSTONE_KINDS: readonly string[] = [
  'member_card',
  'legacy_card',
  'online_customer',
  'email',
  'phone',
]

/**
 * Kinds households share: an erased phone's tombstone is asked only by a caller that says so
 * (isErasedIdentity's `shared`), the customer import for a row whose only id is the phone (that
 * row is the erased person: their name, birthday, consent and tags would come back). A row
 * naming someone by another id still takes the phone (a family member's), and a lookup by phone
 * answers 404, not 410 (the person looked for may be another of the household).
 */
const SHARED_KINDS: readonly string[] = ['phone']

/**
 * Kinds whose values are few enough to hash them all: a phone (Japanese numbers are ~3×10^8,
 * seconds for a GPU to hash them all), whose plain hash would keep the phone. Their tombstone is
 * keyed with the database's `tombstones` secret (an HMAC of the plain hash), so it cannot be told
 * without it.
 */
const KEYED_KINDS: readonly string[] = ['phone']

/** The `tombstones` secret, for the tombstones of KEYED_KINDS. */
export type TombstoneKey = { readonly secret: string }

/**
 * The key of the phone's tombstone, read once a process (getAppSecret keeps it): an erasure or an
 * import loads it before its transactions, and asks the database for it no more after that.
 */
export async function loadTombstoneKey(db: Database): Promise<TombstoneKey> {
  return { secret: await getAppSecret(db, 'tombstones') }
}

/**
 * What an erased identity value (or LINE user id) is stored as: a SHA-256, never the value, or
 * for KEYED_KINDS an HMAC of that SHA-256 with `key` (so the plain tombstones stored now can be
 * keyed too, in place, should their kind join: no value is needed). Scans look the tombstone up to
 * tell "erased" (410) from "unknown" (404).
 */
export function erasedValue(kind: string, value: string, key?: TombstoneKey): string {
  const plain = createHash('sha256').update(`${kind}:${value}`).digest('hex')
  if (!KEYED_KINDS.includes(kind)) return TOMBSTONE + plain
  if (!key) throw new Error(`the tombstone of a ${kind} needs the tombstones key`)
  return TOMBSTONE + createHmac('sha256', key.secret).update(plain).digest('hex')
}

/**
 * The tombstones an erasure may have left of (kind, value): the hash of the value as read now
 * and of it as it arrived, trimmed only (`typed`). Before card numbers were read with NFKC
 * (readCode), a legacy card was stored as it came ("Ｌ１２３", a scanner typing through the IME
 * in full-width mode; "１２３４-５６７８" from a spreadsheet), and its erasure hashed that form;
 * so did an erasure of a card the migration left in full width (README, "Legacy cards left in
 * full width"). A hash cannot be read back, so no migration can rewrite them: a legacy card's
 * value is also asked in the widths it may have come in then (widthFormsOf), so the card is
 * erased however it is typed now, as it was found however it was typed while it lived. Member
 * cards were always stored as 13 ASCII digits.
 */
export function tombstonesOf(
  kind: string,
  value: string,
  typed = value,
  key?: TombstoneKey,
): string[] {
  const forms = kind === 'legacy_card' ? widthFormsOf(value) : [value]
  return [...new Set([...forms, typed.trim()])].map((v) => erasedValue(kind, v, key))
}

/**
 * Whether (kind, value) belonged to a customer erased on request (its tombstone exists); `typed`
 * is the value as it arrived (tombstonesOf). A phone's tombstone is asked only with `shared`
 * (SHARED_KINDS); a KEYED_KINDS' tombstone needs `key` (loadTombstoneKey).
 */
export async function isErasedIdentity(
  db: Db,
  kind: string,
  value: string,
  typed = value,
  opts: { shared?: boolean; key?: TombstoneKey } = {},
): Promise<boolean> {
  if (!TOMBSTONE_KINDS.includes(kind)) return false
  if (SHARED_KINDS.includes(kind) && !opts.shared) return false
  const tombstone = await db
    .selectFrom('identity')
    .select('id')
    .where('kind', '=', kind)
    .where('value', 'in', tombstonesOf(kind, value, typed, opts.key))
    .executeTakeFirst()
  return tombstone !== undefined
}
