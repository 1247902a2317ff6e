import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto'
import { ean13CheckDigit } from '../../src/cards/ean13.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import type { Database } from '../../src/platform/db.ts'

/** A fresh valid EAN-13 member card number (restricted-circulation prefix 29). */
export function cardNumber(): string {
  const body = `29${BigInt(`0x${randomBytes(6).toString('hex')}`)
    .toString()
    .slice(0, 10)
    .padStart(10, '0')}`
  return body + ean13CheckDigit(body)
}

/** The values of the customer's identities of `kind`, oldest first. */
export async function identityValuesOf(
  db: Database,
  customerId: string,
  kind: string,
): Promise<string[]> {
  const rows = await db
    .selectFrom('identity')
    .select('value')
    .where('customer_id', '=', customerId)
    .where('kind', '=', kind)
    .orderBy('created_at')
    .execute()
  return rows.map((r) => r.value)
}

/** The customer's member-card numbers, oldest first (the one LINE shows). */
export const memberCardsOf = (db: Database, customerId: string) =>
  identityValuesOf(db, customerId, 'member_card')

export const uid = () => `U${randomUUID().replaceAll('-', '')}`

type CustomerSeed = {
  displayName?: string | null
  email?: string | null
  phone?: string | null
  /** Marketing on both channels (rows written); absent = the defaults. */
  marketingConsent?: boolean
  points?: number
  line?: boolean
  identities?: { kind: string; value: string }[]
}

/** A customer with optional LINE user, identities and points (a ledger row backs the points). */
export async function createCustomer(db: Database, seed: CustomerSeed = {}) {
  const customer = await db
    .insertInto('customer')
    .values({
      display_name: seed.displayName ?? null,
      email: seed.email ?? null,
      phone: seed.phone ?? null,
      points: seed.points ?? 0,
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  const id = customer.id
  if (seed.marketingConsent !== undefined) {
    await db
      .insertInto('consent')
      .values(
        (['line', 'email'] as const).map((channel) => ({
          customer_id: id,
          category: 'marketing',
          channel,
          granted: seed.marketingConsent ?? false,
          source: 'import',
        })),
      )
      .execute()
  }
  let lineUid: string | null = null
  if (seed.line) {
    lineUid = uid()
    await db
      .insertInto('identity')
      .values({ customer_id: id, kind: 'line', value: lineUid })
      .execute()
    await db
      .insertInto('line_user')
      .values({
        customer_id: id,
        line_uid: lineUid,
        status: 'friend',
        status_changed_at: new Date(),
        followed_at: new Date(),
      })
      .execute()
  }
  for (const identity of seed.identities ?? []) {
    await db
      .insertInto('identity')
      .values({ customer_id: id, ...identity })
      .execute()
  }
  if (seed.points) {
    await db
      .insertInto('points_ledger')
      .values({ customer_id: id, delta: seed.points, reason: 'earn' })
      .execute()
  }
  return { id, lineUid }
}

/** A store purchase of `total` yen with one line, `daysAgo` days back. */
export async function createPurchase(
  db: Database,
  customerId: string,
  opts: { total: number; daysAgo?: number; sku?: string },
) {
  const purchasedAt = new Date(Date.now() - (opts.daysAgo ?? 1) * 86_400_000)
  const purchase = await db
    .insertInto('purchase')
    .values({
      customer_id: customerId,
      channel: 'store',
      source: 'S001',
      external_id: randomUUID(),
      purchased_at: purchasedAt,
      total: opts.total,
      line_skus: [opts.sku ?? 'SOFA-1'],
      line_names: ['Sofa'],
      line_quantities: [1],
      line_unit_prices: [opts.total],
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  return { id: purchase.id, purchasedAt }
}

export async function createCoupon(db: Database, customerId: string) {
  const code = `C${randomUUID().slice(0, 12)}`
  await db
    .insertInto('coupon')
    .values({
      code,
      customer_id: customerId,
      kind: 'welcome',
      title: '¥500 off',
      discount_yen: 500,
    })
    .execute()
  return code
}

/** Merges `mergedId` into `survivorId` in a transaction of its own; returns what moved. */
export function mergeInto(db: Database, survivorId: string, mergedId: string, reason = 'test') {
  return db.transaction().execute((trx) => mergeCustomers(trx, { survivorId, mergedId, reason }))
}

/**
 * Customers merged one into the next, `hops` merges long, written row by row: ids[0] leads to
 * ids[hops]. No merge writes such a chain (mergeCustomers re-points earlier merges at its
 * survivor, so every merged customer points at a customer not merged); it stands for one left
 * by hand or by a bug, which every walk of merges must still follow, or refuse. `erased`: the
 * last one was erased on request.
 */
export async function writeMergeChain(
  db: Database,
  hops: number,
  opts: { erased?: boolean } = {},
): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i <= hops; i++) ids.push((await createCustomer(db)).id)
  for (let i = 0; i < hops; i++) {
    await db
      .updateTable('customer')
      .set({ merged_into_id: ids[i + 1] })
      .where('id', '=', ids[i] as string)
      .execute()
  }
  if (opts.erased) {
    await db
      .updateTable('customer')
      .set({ erased_at: new Date() })
      .where('id', '=', ids[hops] as string)
      .execute()
  }
  return ids
}

/** A new shop id (online_customer identity) held by `customerId`, merged or not; its value. */
export async function shopIdHeldBy(db: Database, customerId: string): Promise<string> {
  const value = `shop-${randomUUID()}`
  await db
    .insertInto('identity')
    .values({ customer_id: customerId, kind: 'online_customer', value })
    .execute()
  return value
}

/** The stored requests of these multicast chunks (null: dropped), sorted, nulls first. */
export async function chunkBodies(db: Database, ids: string[]): Promise<(string | null)[]> {
  const rows = await db
    .selectFrom('multicast_request')
    .select('body')
    .where('id', 'in', ids)
    .execute()
  return rows.map((r) => r.body).sort()
}

/**
 * The tombstone an erased `phone` is expected to leave, worked out here from the database's
 * `tombstones` secret: an HMAC of the plain SHA-256 (which alone would keep the phone).
 */
export async function keyedPhoneTombstone(db: Database, phone: string) {
  const plain = createHash('sha256').update(`phone:${phone}`).digest('hex')
  const { value: secret } = await db
    .selectFrom('app_secret')
    .select('value')
    .where('name', '=', 'tombstones')
    .executeTakeFirstOrThrow()
  const keyed = createHmac('sha256', secret).update(plain).digest('hex')
  return { plain: `erased:${plain}`, keyed: `erased:${keyed}` }
}
