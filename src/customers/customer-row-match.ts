import type { Transaction } from 'kysely'
import type { DB } from '../platform/db.ts'
import { findIdentityOwner, findSurvivingCustomer, listIdentities } from './customer.repo.ts'
import type { CustomerImportRow } from './customer.schemas.ts'
import type { IdentityKind } from './identity-values.ts'
import { isErasedIdentity, type TombstoneKey } from './tombstones.ts'

// Which customer a row of `kizuna import customers` describes (importCustomerRow).

/** A row refused because of one field; the import reports it and goes on. */
export class RowError extends Error {
  override name = 'RowError'
  readonly field: string
  constructor(field: string, message: string) {
    super(message)
    this.field = field
  }
}

export const ID_COLUMNS = [
  ['external_id', 'online_customer'],
  ['member_card', 'member_card'],
  ['legacy_card', 'legacy_card'],
  ['email', 'email'],
  ['phone', 'phone'],
] as const satisfies readonly (readonly [keyof CustomerImportRow, IdentityKind])[]

/** `typed`: the value as the file gave it, trimmed only (a card's; tombstonesOf). */
export type RowId = {
  column: (typeof ID_COLUMNS)[number][0]
  kind: IdentityKind
  value: string
  typed: string
}

/** Ids that name one person: they find the customer, and may merge two (one person). */
const PERSONAL_KINDS: readonly IdentityKind[] = ['online_customer', 'member_card', 'legacy_card']

const ERASED = 'this customer was erased on request'

/**
 * The live customer holding the id (after merges); RowError if it is an erased person's, unless
 * `shopAccountRow` and the id is not one naming the person (email, phone), or it is a phone and
 * not `phoneOnly` (the row's only id).
 */
async function ownerOf(
  trx: Transaction<DB>,
  id: RowId,
  row: { shopAccountRow: boolean; phoneOnly: boolean; key: TombstoneKey },
): Promise<string | undefined> {
  const owner = await findIdentityOwner(trx, id.kind, id.value)
  if (!owner) {
    // Erasure leaves a tombstone, not the value: an old export must not re-create the person.
    // An old export names them by their erased external id or card; a row with a live (or new)
    // external id is someone's current shop account, e.g. the person signing up again, whose
    // email then becomes a live identity again (as account link allows). An erased phone refuses
    // only a row naming no one else (households share a phone: a family member's row names
    // them by another id, and takes the phone).
    const reusable = row.shopAccountRow && !PERSONAL_KINDS.includes(id.kind)
    const shared = { shared: row.phoneOnly, key: row.key }
    if (!reusable && (await isErasedIdentity(trx, id.kind, id.value, id.typed, shared))) {
      throw new RowError(id.column, ERASED)
    }
    return undefined
  }
  const customer = await findSurvivingCustomer(trx, owner.customer_id)
  if (!customer || customer.erased_at) throw new RowError(id.column, ERASED)
  return customer.id
}

/** A customer's shop accounts, and whether they have their own LINE account or member card. */
async function accountsOf(trx: Transaction<DB>, customerId: string) {
  const identities = await listIdentities(trx, customerId)
  return {
    shop: identities.filter((i) => i.kind === 'online_customer').map((i) => i.value),
    emails: identities.filter((i) => i.kind === 'email').map((i) => i.value),
    line: identities.some((i) => i.kind === 'line'),
    card: identities.some((i) => i.kind === 'member_card'),
  }
}

const OTHER_SHOP_ACCOUNT =
  'held by a customer with another external_id; not attached (two shop accounts are never merged)'
const OTHER_LINE_ACCOUNT =
  'held by another customer with their own LINE account; not attached (two LINE accounts are never merged)'
const OTHER_PERSON =
  'held by another customer with their own shop account or member card; not attached (a shared phone never merges two people)'
const OTHER_EMAIL =
  'held by another customer with another email; not attached (a shared phone never merges two people)'

/**
 * The customer the row describes, or undefined for a new one. External id, else member card,
 * else legacy card, finds it; else email, else phone. An email or phone never brings two shop accounts, or two
 * LINE accounts, together (households share a phone, sometimes an email): one held by a
 * customer with another external id or their own LINE account is a conflict, and so is a phone
 * held by someone with a shop account or card of their own when the row names its person by
 * one too, or with an email of their own other than the row's (a phone alone finds a customer
 * only when nothing on the row says it is someone else: re-running the file would otherwise
 * move the name and email back and forth between the two rows). A conflict is returned (with why) to be left off (the rest of the row still
 * applies: refusing it would drop a family member, or an opt-out, because of a shared phone).
 * `key` keys an erased phone's tombstone (loadTombstoneKey).
 */
export async function findRowCustomer(
  trx: Transaction<DB>,
  row: CustomerImportRow,
  ids: RowId[],
  key: TombstoneKey,
): Promise<{ customerId: string | undefined; conflicts: Map<RowId, string> }> {
  const owners = new Map<RowId, string>()
  // ids lists external_id first: an erased one refuses the row before its email is looked at.
  const rowIds = {
    shopAccountRow: row.external_id !== undefined,
    phoneOnly: ids.every((id) => id.kind === 'phone'),
    key,
  }
  for (const id of ids) {
    const owner = await ownerOf(trx, id, rowIds)
    if (owner) owners.set(id, owner)
  }
  const personal = ids.filter((id) => PERSONAL_KINDS.includes(id.kind))
  const email = ids.find((id) => id.kind === 'email')?.value
  const personalOwners = new Set(personal.flatMap((id) => owners.get(id) ?? []))
  const accounts = new Set(row.external_id === undefined ? [] : [row.external_id])
  let hasLine = false
  for (const owner of personalOwners) {
    const theirs = await accountsOf(trx, owner)
    for (const account of theirs.shop) accounts.add(account)
    hasLine ||= theirs.line
  }
  let customerId = personal.map((id) => owners.get(id)).find((owner) => owner !== undefined)
  const conflicts = new Map<RowId, string>()
  for (const id of ids) {
    const owner = owners.get(id)
    if (!owner || personalOwners.has(owner) || owner === customerId) continue
    const theirs = await accountsOf(trx, owner)
    if (accounts.size > 0 && theirs.shop.length > 0) {
      conflicts.set(id, OTHER_SHOP_ACCOUNT)
      continue
    }
    if (hasLine && theirs.line) {
      conflicts.set(id, OTHER_LINE_ACCOUNT)
      continue
    }
    if (id.kind === 'phone' && personal.length > 0 && (theirs.shop.length > 0 || theirs.card)) {
      conflicts.set(id, OTHER_PERSON)
      continue
    }
    if (id.kind === 'phone' && email !== undefined && theirs.emails.some((e) => e !== email)) {
      conflicts.set(id, OTHER_EMAIL)
      continue
    }
    if (customerId === undefined) {
      customerId = owner
      for (const account of theirs.shop) accounts.add(account)
      hasLine ||= theirs.line
    }
  }
  return { customerId, conflicts }
}
