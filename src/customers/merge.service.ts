import { sql, type Transaction } from 'kysely'
import { mergeConsents } from '../consent/consent.service.ts'
import type { DB } from '../platform/db.ts'
import { AppError, invalidField } from '../platform/errors.ts'
import { findShopAccountWaitingOn } from '../purchases/pending-purchase.repo.ts'
import { attachPendingPurchases } from '../purchases/pending-purchases.service.ts'
import { pointsPlus } from '../purchases/purchase.repo.ts'
import { lockPurchaser, type PurchaseEnv } from '../purchases/purchase.service.ts'
import {
  type Customer,
  countIdentities,
  findIdentityOwner,
  insertIdentityIfAbsent,
  lockCustomers,
  moveCustomerRows,
  OWNED_TABLES,
  type OwnedTable,
  recomputeCustomerStats,
  type TierThreshold,
} from './customer.repo.ts'
import { HolderChanged, lockAttachParties } from './customer-lock.repo.ts'
import { wouldBeSecondShopAccount } from './customer-lookup.service.ts'
import { moveCustomerTags } from './customer-tag.repo.ts'
import { type IdentityKind, normaliseIdentity } from './identity-values.ts'
import { isErasedIdentity } from './tombstones.ts'

/**
 * Two shop accounts (online customer ids) would end on one customer: refused (CONFLICT), nothing
 * changed. An order keeps itself apart instead (recordOrder), waiting for its own shop account.
 */
export class OtherShopAccount extends AppError {
  override name = 'OtherShopAccount'
  constructor(message: string) {
    super('CONFLICT', `${message} (two shop accounts are never merged)`)
  }
}

/** Kinds a person carries as a card: refused for good once their holder is erased. */
const CARD_KINDS: readonly IdentityKind[] = ['member_card', 'legacy_card']

export type MergeInput = {
  survivorId: string
  mergedId: string
  /** Why: `scan`, `account-link`, `import:customers`, … (kept in merge_audit; no personal data). */
  reason: string
  /** When given, the survivor's tier is recomputed from its 12-month spend. */
  tierThresholds?: TierThreshold[]
}

/** Rows moved per table (`customer_tag`: the tags the survivor did not carry yet), and points. */
export type MergeCounts = Record<OwnedTable | 'customer_tag' | 'points', number>

function usable(customer: Customer | undefined, role: string): Customer {
  if (!customer) throw new AppError('NOT_FOUND', `the ${role} customer does not exist`)
  if (customer.erased_at) throw new AppError('GONE', `the ${role} customer was erased`)
  if (customer.merged_into_id) {
    throw new AppError('CONFLICT', `the ${role} customer was already merged into another one`)
  }
  return customer
}

/**
 * The survivor's name after a merge: its own, unless it has none or has only the LINE nickname
 * Kizuna gave it (fillCustomerName) and the merged customer has a name the shop gave (a customer
 * import). In an account link the survivor is the LINE friend's customer, named after their
 * nickname, and the merged one is the shop's customer, whose name the merge clears for good.
 */
function survivingName(
  survivor: Customer,
  merged: Customer,
): Pick<Customer, 'display_name' | 'display_name_from_line'> {
  const mergedOutranks =
    merged.display_name !== null &&
    (survivor.display_name === null ||
      (survivor.display_name_from_line && !merged.display_name_from_line))
  const from = mergedOutranks ? merged : survivor
  return { display_name: from.display_name, display_name_from_line: from.display_name_from_line }
}

/**
 * Refuses when both customers have their own LINE account (never a silent re-bind), or both
 * their own shop account (OtherShopAccount). Returns their LINE account counts.
 */
export async function assertMergeable(trx: Transaction<DB>, ids: [string, string]) {
  const both = (counts: Map<string, number>) =>
    (counts.get(ids[0]) ?? 0) > 0 && (counts.get(ids[1]) ?? 0) > 0
  const lines = await countIdentities(trx, ids, 'line')
  if (both(lines)) {
    throw new AppError(
      'CONFLICT',
      'both customers have their own LINE account; they cannot be merged automatically',
    )
  }
  if (both(await countIdentities(trx, ids, 'online_customer'))) {
    throw new OtherShopAccount(
      'both customers have their own shop account; they cannot be merged automatically',
    )
  }
  return lines
}

/**
 * Moves everything of `mergedId` onto `survivorId` in the caller's transaction: identities,
 * LINE users, purchases, points (ledger and balance), coupons, deliveries and tags (the union of
 * both customers' tags: one both carry stays once). Keeps the most restrictive consent per
 * category and channel, fills the survivor's missing profile fields (a name the shop gave
 * replaces a LINE nickname: survivingName), recomputes its stats, keeps
 * the merged row as a pointer (personal data cleared) and writes merge_audit. Two customers
 * with their own LINE account, or their own shop account, are refused (assertMergeable).
 */
export async function mergeCustomers(
  trx: Transaction<DB>,
  input: MergeInput,
): Promise<{ survivorId: string; mergedId: string; moved: MergeCounts }> {
  const { survivorId, mergedId } = input
  if (survivorId === mergedId)
    throw new AppError('BAD_REQUEST', 'cannot merge a customer into itself')
  const locked = await lockCustomers(trx, [survivorId, mergedId])
  const survivor = usable(
    locked.find((c) => c.id === survivorId),
    'surviving',
  )
  const merged = usable(
    locked.find((c) => c.id === mergedId),
    'merged',
  )
  await assertMergeable(trx, [survivorId, mergedId])

  const moved = { points: merged.points } as MergeCounts
  for (const table of OWNED_TABLES) {
    moved[table] = await moveCustomerRows(trx, table, mergedId, survivorId)
  }
  moved.customer_tag = await moveCustomerTags(trx, mergedId, survivorId)

  await trx
    .updateTable('customer')
    .set({
      points: pointsPlus(sql`points`, sql`${merged.points}::int`),
      ...survivingName(survivor, merged),
      email: survivor.email ?? merged.email,
      phone: survivor.phone ?? merged.phone,
      birthday: survivor.birthday ?? merged.birthday,
      updated_at: sql`now()`,
    })
    .where('id', '=', survivorId)
    .execute()
  // Earlier merges into the merged customer now point straight at the survivor.
  await trx
    .updateTable('customer')
    .set({ merged_into_id: survivorId, updated_at: sql`now()` })
    .where('merged_into_id', '=', mergedId)
    .execute()
  await trx
    .updateTable('customer')
    .set({
      merged_into_id: survivorId,
      display_name: null,
      display_name_from_line: false,
      email: null,
      phone: null,
      birthday: null,
      points: 0,
      purchase_count: 0,
      total_spent: 0,
      spend_12m: 0,
      tier: 'regular',
      first_purchase_at: null,
      last_purchase_at: null,
      updated_at: sql`now()`,
    })
    .where('id', '=', mergedId)
    .execute()
  await mergeConsents(trx, survivorId, mergedId)
  await recomputeCustomerStats(trx, survivorId, input.tierThresholds)

  await trx
    .insertInto('merge_audit')
    .values({
      surviving_customer_id: survivorId,
      merged_customer_id: mergedId,
      reason: input.reason,
      moved: JSON.stringify(moved),
    })
    .execute()
  return { survivorId, mergedId, moved }
}

export type AttachResult = {
  /** The customer that holds the identity now (the survivor when a merge happened). */
  customerId: string
  created: boolean
  mergedCustomerId: string | null
}

/**
 * Gives `customerId` the identity (kind, value). When another customer holds it, the two are
 * merged (the one with a LINE account survives, else `customerId`), unless both have their own
 * LINE account or shop account (assertMergeable): then CONFLICT and nothing changes. A shop account (online customer id) for a
 * customer who holds another is OtherShopAccount, decided once they are locked: an order or import
 * that read them without one, and waited for them while another gave them one, sees it here.
 * Orders that waited for the identity attach (attachWaitingPurchases).
 * An erased customer's card is GONE, and so is an erased target customer. A caller that decided
 * from what it read of the holders (the customer import) names them, locked, in
 * `checkedHolders`: one it did not check holding the identity is HolderChanged, never a merge.
 */
export async function attachIdentity(
  trx: Transaction<DB>,
  customerId: string,
  kind: IdentityKind,
  rawValue: string,
  opts: { env: PurchaseEnv; reason?: string; checkedHolders?: ReadonlySet<string> },
): Promise<AttachResult> {
  const normalised = normaliseIdentity(kind, rawValue)
  // Its callers check the value first, each under its own field's name (a scan's linkBarcode).
  if (!normalised.ok) throw invalidField(kind, normalised.message)
  const value = normalised.value
  // Locked before the identity row is written: that row's foreign key share-locks the customer,
  // and two attaches to one customer that both held that lock and then asked for this one
  // deadlocked (two legacy cards linked to one member at two registers at once). The holder the
  // identity may merge is locked with it, in id order: locked only at the merge, after the
  // target, two attaches going opposite ways deadlocked (two registers each linking one member's
  // card with the other's legacy card). lockPurchaser then finds these rows held.
  await lockAttachParties(trx, customerId, kind, value)
  // An erased person's card stays erased: bound again, its scan would no longer answer 410. (The
  // shop account id and email keep tombstones too, but a person who comes back and proves them
  // may use them again; the customer import refuses them itself.) Asked once the holder is
  // locked: an erasure of them that committed while we waited left only the tombstone, and the
  // card, free by then, would be bound to this customer. The card as it came (`rawValue`) is
  // asked too: one erased before cards were read with NFKC left the hash of that form.
  if (CARD_KINDS.includes(kind) && (await isErasedIdentity(trx, kind, value, rawValue))) {
    throw new AppError('GONE', `this ${kind} belonged to a customer erased on request`)
  }
  const target = await lockPurchaser(trx, customerId)
  if (!target) throw new AppError('NOT_FOUND', 'the customer does not exist')
  if (kind === 'online_customer' && (await wouldBeSecondShopAccount(trx, target.id, value))) {
    throw new OtherShopAccount('this customer already has another shop account')
  }

  let result: AttachResult = { customerId: target.id, created: false, mergedCustomerId: null }
  if (await insertIdentityIfAbsent(trx, target.id, kind, value)) {
    result.created = true
  } else {
    const owner = await findIdentityOwner(trx, kind, value)
    if (!owner) throw new AppError('CONFLICT', `this ${kind} changed while attaching; try again`)
    if (owner.customer_id !== target.id) {
      if (opts.checkedHolders && !opts.checkedHolders.has(owner.customer_id)) {
        throw new HolderChanged(kind)
      }
      const lines = await assertMergeable(trx, [target.id, owner.customer_id])
      const ownerHasLine = (lines.get(owner.customer_id) ?? 0) > 0
      const [survivorId, mergedId] = ownerHasLine
        ? [owner.customer_id, target.id]
        : [target.id, owner.customer_id]
      await mergeCustomers(trx, {
        survivorId,
        mergedId,
        reason: opts.reason ?? `attach:${kind}`,
        tierThresholds: opts.env.TIER_THRESHOLDS,
      })
      result = { customerId: survivorId, created: false, mergedCustomerId: mergedId }
    }
  }
  await attachWaitingPurchases(trx, opts.env, result.customerId, { kind, value })
  return result
}

/**
 * Gives the customer who holds (kind, value), locked, the purchases that waited for it
 * (attachPendingPurchases); returns how many. An order naming a shop account and an email waits
 * for the shop account: recordOrder, had the customer held the email when it came, would have
 * given them that shop account (as an identity) and with it every order waiting for it, unless
 * they held another (wouldBeSecondShopAccount). So does an email given later, with the shop
 * account of the oldest order waiting on it: orders naming another keep waiting for their own
 * (two shop accounts are never merged), whichever came first. A shop account another customer
 * holds is theirs, and so are its orders (the nightly attachStrandedPurchases gives them).
 */
export async function attachWaitingPurchases(
  trx: Transaction<DB>,
  env: PurchaseEnv,
  customerId: string,
  identity: { kind: string; value: string },
): Promise<number> {
  const attached = await attachPendingPurchases(trx, env, customerId, identity)
  if (identity.kind !== 'email') return attached
  // The survivor, locked (a merge since the caller read the holder moved the email there).
  const holder = await lockPurchaser(trx, customerId)
  if (!holder) return attached
  const shopId = await findShopAccountWaitingOn(trx, identity.value, holder.id)
  if (!shopId || (await wouldBeSecondShopAccount(trx, holder.id, shopId))) return attached
  // Given to another customer since it was read: theirs, with its orders; never a merge.
  if (!(await insertIdentityIfAbsent(trx, holder.id, 'online_customer', shopId))) {
    const owner = await findIdentityOwner(trx, 'online_customer', shopId)
    if (owner?.customer_id !== holder.id) return attached
  }
  const shop = { kind: 'online_customer', value: shopId }
  return attached + (await attachPendingPurchases(trx, env, holder.id, shop))
}
