import { createHash } from 'node:crypto'
import { TOMBSTONE } from '../identity/tombstone.ts'
import type { Db } from '../platform/db.ts'
import { widthFormsOf } from './identity-values.ts'

/**
 * Identity kinds that keep a tombstone (a hash of kind and value, never the value) pointing at
 * the erased customer:
 * - cards, so a later scan of the card answers 410 and the card is never bound again;
 * - the shop's account id and the email, so re-running an old customer import cannot re-create
 *   the person from the shop's data (the importer refuses a row whose id is only a tombstone).
 *   Keeping a hash to honour the erasure is the usual suppression list; a person who comes back
 *   and proves the email themselves (account link) may use it again: a live identity wins.
 * Phone numbers keep none: households share them, and a tombstone would refuse the others.
 */
export const TOMBSTONE_KINDS: readonly string[] = [
  'member_card',
  'legacy_card',
  'online_customer',
  'email',
]

/**
 * What an erased identity value (or LINE user id) is stored as: a SHA-256, never the value.
 * Scans look the tombstone up to tell "erased" (410) from "unknown" (404).
 */
export function erasedValue(kind: string, value: string): string {
  return TOMBSTONE + createHash('sha256').update(`${kind}:${value}`).digest('hex')
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
export function tombstonesOf(kind: string, value: string, typed = value): string[] {
  const forms = kind === 'legacy_card' ? widthFormsOf(value) : [value]
  return [...new Set([...forms, typed.trim()])].map((v) => erasedValue(kind, v))
}

/**
 * Whether (kind, value) belonged to a customer erased on request (its tombstone exists); `typed`
 * is the value as it arrived (tombstonesOf).
 */
export async function isErasedIdentity(
  db: Db,
  kind: string,
  value: string,
  typed = value,
): Promise<boolean> {
  if (!TOMBSTONE_KINDS.includes(kind)) return false
  const tombstone = await db
    .selectFrom('identity')
    .select('id')
    .where('kind', '=', kind)
    .where('value', 'in', tombstonesOf(kind, value, typed))
    .executeTakeFirst()
  return tombstone !== undefined
}
