import { randomInt, randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { createApiKey, type Scope } from '../../src/auth/api-key.service.ts'
import { ean13CheckDigit } from '../../src/cards/ean13.ts'
import type { Env } from '../../src/config/env.ts'
import type { Database, Db } from '../../src/platform/db.ts'
import { recordPurchase } from '../../src/purchases/purchase.service.ts'
import { insertStore } from '../../src/stores/store.repo.ts'

/** A valid EAN-13 member-card number with the default prefix 29. */
export function memberCardNumber(prefix = '29'): string {
  const body = prefix + String(randomInt(0, 10 ** 10)).padStart(12 - prefix.length, '0')
  return body + ean13CheckDigit(body)
}

/** The same number with a wrong check digit. */
export function misread(card: string): string {
  return card.slice(0, 12) + ((Number(card[12]) + 1) % 10)
}

export async function makeCustomer(
  db: Db,
  opts: { points?: number; displayName?: string; legacyCard?: string } = {},
) {
  const customer = await db
    .insertInto('customer')
    .values({ display_name: opts.displayName ?? 'Hanako Test', points: opts.points ?? 0 })
    .returning('id')
    .executeTakeFirstOrThrow()
  const card = memberCardNumber()
  await db
    .insertInto('identity')
    .values([
      { customer_id: customer.id, kind: 'member_card', value: card },
      ...(opts.legacyCard
        ? [{ customer_id: customer.id, kind: 'legacy_card', value: opts.legacyCard }]
        : []),
    ])
    .execute()
  return { id: customer.id, card }
}

/** A customer's points balance as stored. */
export async function pointsOf(db: Db, customerId: string): Promise<number> {
  const row = await db
    .selectFrom('customer')
    .select('points')
    .where('id', '=', customerId)
    .executeTakeFirstOrThrow()
  return row.points
}

export async function makeCoupon(
  db: Db,
  customerId: string,
  opts: { discountYen?: number; expiresAt?: Date | null } = {},
) {
  const code = `C${randomUUID().slice(0, 12).toUpperCase()}`
  await db
    .insertInto('coupon')
    .values({
      code,
      customer_id: customerId,
      kind: 'welcome',
      title: 'Welcome 500 yen',
      discount_yen: opts.discountYen ?? 500,
      expires_at: opts.expiresAt === undefined ? new Date(Date.now() + 86_400_000) : opts.expiresAt,
    })
    .execute()
  return code
}

export async function makeStoreKey(db: Db, scopes: Scope[] = ['pos']) {
  const code = `S${randomUUID().slice(0, 8)}`
  const store = await insertStore(db, { code, name: 'Test store' })
  if (!store) throw new Error('store exists')
  const { key } = await createApiKey(db, { storeId: store.id, scopes })
  return { storeId: store.id, storeCode: code, key }
}

/**
 * POSTs to the register API (`path` after `/api/pos`) with a store's Bearer key (null: none):
 * JSON, or a string or bytes sent as they are.
 */
export function postPos(baseUrl: string, path: string, body: unknown, key: string | null) {
  return fetch(`${baseUrl}/api/pos${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  })
}

export const legacyCardNumber = () => `L${randomInt(10 ** 9, 10 ** 10)}`

/** The legacy card numbers these customers hold, sorted. */
export async function legacyCardsOf(db: Db, ...customerIds: string[]): Promise<string[]> {
  const rows = await db
    .selectFrom('identity')
    .select('value')
    .where('customer_id', 'in', customerIds)
    .where('kind', '=', 'legacy_card')
    .execute()
  return rows.map((r) => r.value).sort()
}

/**
 * An old plastic card's number whose spaces, once gone, leave 13 digits with the store's prefix
 * ("29 0012 3456 789"): with a valid check digit, or (9 in 10) not.
 */
export function spacedLegacyCard(validCheckDigit: boolean): string {
  const digits = validCheckDigit ? memberCardNumber() : misread(memberCardNumber())
  return `${digits.slice(0, 2)} ${digits.slice(2, 6)} ${digits.slice(6, 10)} ${digits.slice(10)}`
}

/** A member card number as printed under its bars, in groups: "2 912345 678906". */
export const printedCardNumber = (card: string) =>
  `${card.slice(0, 1)} ${card.slice(1, 7)} ${card.slice(7)}`

/**
 * The text as a scanner or a person types it with a Japanese IME in full-width mode: ASCII
 * letters, digits and signs as their full-width forms (２９１２…, Ｌ１２３, －), spaces as U+3000.
 */
export const fullWidth = (text: string) =>
  text
    .replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0))
    .replaceAll(' ', '\u3000')

/**
 * A register receipt body (`POST /api/pos/scans`): one sofa at ¥8,000 unless overridden; a
 * total given without lines is the sofa's price.
 */
export const receipt = (over: Record<string, unknown> = {}) => {
  const total = typeof over.total === 'number' ? over.total : 8_000
  return {
    id: `R-${randomUUID()}`,
    purchasedAt: new Date().toISOString(),
    lines: [{ sku: 'SOFA-1', name: 'Sofa', quantity: 1, unitPrice: total }],
    total,
    ...over,
  }
}

/** An online order for this customer, one of each sku (no follow-up: not a store purchase). */
export function recordOnlinePurchase(
  db: Database,
  env: Env,
  customerId: string,
  lines: { sku: string; unitPrice: number }[],
) {
  return db.transaction().execute((trx) =>
    recordPurchase(trx, env, {
      channel: 'online',
      source: 'webshop',
      externalId: randomUUID(),
      customerId,
      purchasedAt: new Date(),
      lines: lines.map((l) => ({ ...l, quantity: 1 })),
      total: lines.reduce((sum, l) => sum + l.unitPrice, 0),
    }),
  )
}

/**
 * `n` online orders of 1,000 yen, one a minute back from now, unmatched and waiting on `pending`
 * (and `email`), written in one statement: as many as an import of a shop's history leaves.
 */
export async function insertWaitingOrders(
  db: Db,
  n: number,
  pending: { kind: string; value: string },
  email: string | null = null,
): Promise<void> {
  await sql`
    insert into purchase (channel, source, external_id, purchased_at, total, line_skus,
      line_names, line_quantities, line_unit_prices, pending_identity_kind,
      pending_identity_value, pending_email)
    select 'online', ${`bulk-${randomUUID()}`}, 'W-' || i, now() - (i || ' minutes')::interval,
      1000, array['SOFA-1'], array[null]::text[], array[1], array[1000], ${pending.kind},
      ${pending.value}, ${email}
    from generate_series(1, ${n}) i`.execute(db)
}

/** A customer's stats once they got `n` of insertWaitingOrders' orders (1 % points), gold. */
export const statsOfWaitingOrders = (n: number) => ({
  purchase_count: n,
  total_spent: String(n * 1000),
  spend_12m: String(n * 1000),
  points: n * 10,
  tier: 'gold',
})
