import { sql } from 'kysely'
import { loadConsent } from '../consent/consent.service.ts'
import { type Db, inTransaction } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { type Customer, findIdentityOwner, listIdentities } from './customer.repo.ts'
import { listCustomerTags } from './customer-tag.repo.ts'
import type { IdentityRef } from './identity-values.ts'
import { lockSurvivingCustomer } from './surviving-customer.service.ts'
import { isErasedIdentity } from './tombstones.ts'

const RECENT_PURCHASES = 20

/**
 * The profile of whoever holds `identity`, after merges (404 unknown, 410 erased). Read in one
 * transaction with that customer share-locked (lockSurvivingCustomer), so a merge or erasure of
 * it committing meanwhile is waited for and followed: read apart, a merge committing between
 * finding the customer and reading its rows answered with the merged-away id, no identities,
 * purchases or tags, and default consent (marketing on LINE for someone who had opted out).
 */
export function getCustomerProfileByIdentity(db: Db, identity: IdentityRef) {
  return inTransaction(db, async (trx) => {
    const owner = await findIdentityOwner(trx, identity.kind, identity.value)
    if (!owner) {
      // Erasure keeps only a tombstone of a card, shop account or email: it answers 410, not 404.
      if (await isErasedIdentity(trx, identity.kind, identity.value, identity.typed)) {
        throw new AppError('GONE', 'this customer was erased on request')
      }
      throw new AppError('NOT_FOUND', `no customer has this ${identity.kind}`)
    }
    const customer = await lockSurvivingCustomer(trx, owner.customer_id)
    if (!customer) throw new AppError('NOT_FOUND', `no customer has this ${identity.kind}`)
    if (customer.erased_at) throw new AppError('GONE', 'this customer was erased on request')
    return profileOf(trx, customer)
  })
}

async function profileOf(db: Db, customer: Customer) {
  const [identities, lineUsers, purchases, coupons, consent, tags] = await Promise.all([
    listIdentities(db, customer.id),
    db
      .selectFrom('line_user')
      .select(['status', 'status_changed_at'])
      .where('customer_id', '=', customer.id)
      .orderBy('status_changed_at', 'desc')
      .execute(),
    listRecentPurchases(db, customer.id),
    db
      .selectFrom('coupon')
      .select(['code', 'kind', 'title', 'discount_yen', 'expires_at'])
      .where('customer_id', '=', customer.id)
      .where('used_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]))
      .orderBy('expires_at')
      .execute(),
    loadConsent(db, customer.id),
    listCustomerTags(db, customer.id),
  ])
  const line = lineUsers.find((l) => l.status === 'friend') ?? lineUsers[0]
  return {
    id: customer.id,
    displayName: customer.display_name,
    email: customer.email,
    phone: customer.phone,
    birthday: customer.birthday,
    consent,
    tags,
    tier: customer.tier,
    points: customer.points,
    stats: {
      purchaseCount: customer.purchase_count,
      totalSpent: Number(customer.total_spent),
      spend12m: Number(customer.spend_12m),
      firstPurchaseAt: customer.first_purchase_at,
      lastPurchaseAt: customer.last_purchase_at,
    },
    identities,
    line: line
      ? { status: line.status, since: line.status_changed_at }
      : { status: 'none', since: null },
    recentPurchases: purchases,
    coupons: coupons.map((c) => ({
      code: c.code,
      kind: c.kind,
      title: c.title,
      discountYen: c.discount_yen,
      expiresAt: c.expires_at,
    })),
  }
}

async function listRecentPurchases(db: Db, customerId: string) {
  const purchases = await db
    .selectFrom('purchase')
    .select(['id', 'channel', 'source', 'external_id', 'purchased_at', 'total', 'voided_at'])
    .select(['points_earned', 'points_used'])
    .select(['line_skus', 'line_names', 'line_quantities', 'line_unit_prices'])
    .where('customer_id', '=', customerId)
    .orderBy('purchased_at', 'desc')
    .limit(RECENT_PURCHASES)
    .execute()
  return purchases.map((p) => ({
    id: p.id,
    channel: p.channel,
    source: p.source,
    externalId: p.external_id,
    purchasedAt: p.purchased_at,
    total: p.total,
    pointsEarned: p.points_earned,
    pointsUsed: p.points_used,
    voided: p.voided_at !== null,
    lines: p.line_skus.map((sku, i) => ({
      sku,
      name: p.line_names[i] ?? null,
      quantity: p.line_quantities[i],
      unitPrice: p.line_unit_prices[i],
    })),
  }))
}
