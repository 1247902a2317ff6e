import { sql } from 'kysely'
import { erasedValue } from '../customers/tombstones.ts'
import { ERASED_PATTERN } from '../identity/tombstone.ts'
import type { Db } from '../platform/db.ts'

export type NewCoupon = {
  code: string
  customerId: string
  kind: string
  title: string
  discountYen: number
  expiresAt: Date
}

/**
 * Serialises card issuing for one customer inside the caller's transaction; the row as it stands
 * once locked (merged or erased meanwhile).
 */
export async function lockCustomerForCard(db: Db, customerId: string) {
  return db
    .selectFrom('customer')
    .select(['id', 'merged_into_id', 'erased_at'])
    .where('id', '=', customerId)
    .forUpdate()
    .executeTakeFirstOrThrow(() => new Error('customer not found'))
}

/**
 * The customer's member card (the oldest, should a merge have left two). An erased member's
 * tombstone is no card: they have none.
 */
export async function findMemberCardOf(db: Db, customerId: string) {
  return db
    .selectFrom('identity')
    .select(['id', 'value'])
    .where('customer_id', '=', customerId)
    .where('kind', '=', 'member_card')
    .where('value', 'not like', ERASED_PATTERN)
    .orderBy('created_at')
    .orderBy('id')
    .limit(1)
    .executeTakeFirst()
}

/**
 * Locks these customers in id order (as merges lock theirs), each as it stands once locked: a
 * customer merged or erased meanwhile says so, and whether it holds a member card. The cards are
 * read by a statement of their own, after the locks: one inside the locking statement would see
 * them as they were when it began, before it waited, and miss a card issued by the transaction
 * it waited for (a follow's, then a second card here).
 */
export async function lockCustomersForCards(db: Db, customerIds: string[]) {
  const locked = await db
    .selectFrom('customer')
    .select(['id', 'merged_into_id', 'erased_at'])
    .where('id', 'in', customerIds)
    .orderBy('id')
    .forUpdate()
    .execute()
  const ids = locked.map((c) => c.id)
  if (ids.length === 0) return []
  const holders = await db
    .selectFrom('identity')
    .select('customer_id')
    .distinct()
    .where('customer_id', 'in', ids)
    .where('kind', '=', 'member_card')
    .execute()
  const holding = new Set(holders.map((h) => h.customer_id))
  return locked.map((c) => ({ ...c, has_card: holding.has(c.id) }))
}

/**
 * Inserts the cards; a number that already belongs to someone (e.g. an import) is left out, and
 * so is an erased member's (its tombstone: an erased card is never bound again, and its old
 * number, printed or saved in a photo, names no one).
 */
export async function insertMemberCards(
  db: Db,
  cards: { customerId: string; cardNumber: string }[],
) {
  if (cards.length === 0) return []
  const ids = cards.map((c) => c.customerId)
  const numbers = cards.map((c) => c.cardNumber)
  const tombstones = numbers.map((n) => erasedValue('member_card', n))
  return db
    .insertInto('identity')
    .columns(['customer_id', 'kind', 'value'])
    .expression(
      sql`select c.customer_id, 'member_card', c.value
        from unnest(${ids}::uuid[], ${numbers}::text[], ${tombstones}::text[])
          as c(customer_id, value, tombstone)
        where not exists (select 1 from identity t
          where t.kind = 'member_card' and t.value = c.tombstone)`,
    )
    .onConflict((oc) => oc.columns(['kind', 'value']).doNothing())
    .returning(['id', 'value', 'customer_id'])
    .execute()
}

/** Inserts a coupon; false when the code is taken. */
export async function insertCouponIfCodeFree(db: Db, c: NewCoupon): Promise<boolean> {
  const row = await db
    .insertInto('coupon')
    .values({
      code: c.code,
      customer_id: c.customerId,
      kind: c.kind,
      title: c.title,
      discount_yen: c.discountYen,
      expires_at: c.expiresAt,
    })
    .onConflict((oc) => oc.column('code').doNothing())
    .returning('id')
    .executeTakeFirst()
  return row !== undefined
}

/** The unused, unexpired coupon that runs out first. */
export async function findUsableCoupon(db: Db, customerId: string, now: Date) {
  return db
    .selectFrom('coupon')
    .select(['code', 'title', 'expires_at'])
    .where('customer_id', '=', customerId)
    .where('used_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy(sql`expires_at asc nulls last`)
    .orderBy('created_at')
    .limit(1)
    .executeTakeFirst()
}

export async function findCardHolder(db: Db, customerId: string) {
  return db
    .selectFrom('customer')
    .select(['display_name', 'tier', 'points'])
    .where('id', '=', customerId)
    .executeTakeFirstOrThrow(() => new Error('customer not found'))
}

/** A member card whose holder still exists (not erased). */
export async function findLiveMemberCardById(db: Db, identityId: string) {
  return db
    .selectFrom('identity')
    .innerJoin('customer', 'customer.id', 'identity.customer_id')
    .select(['identity.id', 'identity.value'])
    .where('identity.id', '=', identityId)
    .where('identity.kind', '=', 'member_card')
    .where('customer.erased_at', 'is', null)
    .executeTakeFirst()
}
