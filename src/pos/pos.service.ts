import { type RawBuilder, sql } from 'kysely'
import { erasedValue } from '../customers/erase.service.ts'
import { attachIdentity } from '../customers/merge.service.ts'
import type { Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import { recordPurchaseFor } from '../purchases/purchase.service.ts'
import { type BarcodeShape, classifyBarcode } from './barcode.ts'
import {
  type CardOwner,
  cardOwnerStart,
  findCardOwners,
  findCouponOwner,
  findCustomerLink,
  findMemberSummary,
  findPurchaseResult,
} from './pos.repo.ts'
import type { ScanBody, ScanResponse } from './pos.schemas.ts'

export type PosDeps = Pick<Deps, 'db' | 'env'>
export type PosStore = { id: string; code: string }
type Resolved = { customerId: string; via: 'member_card' | 'legacy_card' | 'coupon' }

const UNKNOWN =
  'no member card, legacy card or coupon has this number: check the number printed under ' +
  'the barcode, or ask the shopper to show the member card in LINE'
const ERASED = "this member's data was erased on request; the card is no longer valid"

/** Follows merges to the surviving customer; an erased one is GONE. */
async function survivorOf(
  db: Db,
  start: Pick<CardOwner, 'customer_id' | 'erased_at' | 'merged_into_id'>,
) {
  let row: typeof start | undefined = start
  for (let hop = 0; hop < 10 && row; hop++) {
    if (row.erased_at) throw new AppError('GONE', ERASED)
    if (!row.merged_into_id) return row.customer_id
    row = await findCustomerLink(db, row.merged_into_id)
  }
  throw new AppError('NOT_FOUND', UNKNOWN)
}

function cardLookup(barcode: string, shape: BarcodeShape) {
  if (shape === 'misread_member_card') {
    throw new AppError('UNPROCESSABLE', 'misread barcode, scan again')
  }
  const kinds = shape === 'member_card' ? ['member_card', 'legacy_card'] : ['legacy_card']
  const values = [barcode, ...kinds.map((kind) => erasedValue(kind, barcode))]
  return { kinds, values }
}

/** Barcode → customer: member card, else legacy card, else coupon code; tombstones → 410. */
export async function resolveBarcode(
  db: Db,
  barcode: string,
  shape: BarcodeShape,
): Promise<Resolved> {
  const { kinds, values } = cardLookup(barcode, shape)
  const owners = await findCardOwners(db, kinds, values)
  const live = owners.filter((o) => o.value === barcode)
  const owner = live.find((o) => o.kind === 'member_card') ?? live[0]
  if (owner) {
    const via = owner.kind === 'member_card' ? 'member_card' : 'legacy_card'
    return { customerId: await survivorOf(db, owner), via }
  }
  if (owners.length > 0) throw new AppError('GONE', ERASED)
  const couponOwner = shape === 'other' ? await findCouponOwner(db, barcode) : undefined
  if (couponOwner) return { customerId: await survivorOf(db, couponOwner), via: 'coupon' }
  throw new AppError('NOT_FOUND', UNKNOWN)
}

export async function memberSummary(db: Db, customerId: string): Promise<ScanResponse['customer']> {
  return toSummary(await findMemberSummary(db, customerId))
}

function toSummary(row: {
  id: string
  display_name: string | null
  tier: string
  points: number
  coupons: { code: string; title: string; discount_yen: number; expires_at: string | Date | null }[]
}): ScanResponse['customer'] {
  return {
    id: row.id,
    displayName: row.display_name,
    tier: row.tier,
    points: row.points,
    coupons: row.coupons.map((c) => ({
      code: c.code,
      title: c.title,
      discountYen: c.discount_yen,
      expiresAt: c.expires_at === null ? null : new Date(c.expires_at).toISOString(),
    })),
  }
}

/**
 * The register scan: who the member is and, with a receipt, the purchase recorded once per
 * (store, receipt id). Everything happens in one transaction; any error writes nothing.
 */
export async function scan(deps: PosDeps, store: PosStore, body: ScanBody): Promise<ScanResponse> {
  const shape = classifyBarcode(body.barcode, deps.env.MEMBER_CARD_PREFIX)
  if (!body.receipt && !body.linkBarcode) {
    const { customerId } = await resolveBarcode(deps.db, body.barcode, shape)
    return { customer: await memberSummary(deps.db, customerId) }
  }
  if (!body.linkBarcode) {
    // One statement, atomic on its own: no transaction needed.
    const { kinds, values } = cardLookup(body.barcode, shape)
    const start = cardOwnerStart({
      barcode: body.barcode,
      kinds,
      values,
      withCoupon: shape === 'other',
    })
    const answer = await recordReceipt(deps.db, deps, store, body, start)
    if (answer) return answer
    await resolveBarcode(deps.db, body.barcode, shape) // says why no one was found (404, 410)
    throw new AppError('NOT_FOUND', UNKNOWN)
  }
  return deps.db.transaction().execute(async (trx) => {
    const resolved = await resolveBarcode(trx, body.barcode, shape)
    if (classifyBarcode(body.linkBarcode ?? '', deps.env.MEMBER_CARD_PREFIX) !== 'other') {
      throw new AppError(
        'BAD_REQUEST',
        'linkBarcode: a member card cannot be linked as a legacy card',
      )
    }
    const attached = await attachIdentity(
      trx,
      resolved.customerId,
      'legacy_card',
      body.linkBarcode ?? '',
      { env: deps.env, reason: 'scan' },
    )
    const customerId = attached.customerId
    if (!body.receipt) return { customer: await memberSummary(trx, customerId) }
    const coupon = resolved.via === 'coupon' ? body.barcode : null
    const start = sql`select ${customerId}::uuid as customer_id, ${resolved.via}::text as via,
      ${coupon}::text as coupon`
    const answer = await recordReceipt(trx, deps, store, body, start)
    if (!answer) throw new AppError('NOT_FOUND', 'no customer with this id')
    return answer
  })
}

/** Records the receipt for the customer `start` finds; undefined when it finds no one. */
async function recordReceipt(
  db: Db,
  deps: PosDeps,
  store: PosStore,
  body: ScanBody,
  start: RawBuilder<unknown>,
): Promise<ScanResponse | undefined> {
  const receipt = body.receipt
  if (!receipt) throw new Error('recordReceipt needs a receipt')
  const recorded = await recordPurchaseFor(
    db,
    deps.env,
    {
      channel: 'store',
      source: store.code,
      externalId: receipt.id,
      storeId: store.id,
      registerId: body.registerId ?? null,
      customerId: null,
      purchasedAt: receipt.purchasedAt,
      lines: receipt.lines,
      total: receipt.total,
      pointsUsed: receipt.pointsUsed,
      couponCodes: [...new Set(receipt.couponsUsed)],
    },
    { start, withResult: true },
  )
  if (recorded.notFound) return undefined
  if (!recorded.created) return replayOf(db, recorded.purchaseId)
  return recorded.result as ScanResponse
}

/** The answer given the first time, marked as a replay (rebuilt if none was stored). */
async function replayOf(trx: Db, purchaseId: string): Promise<ScanResponse> {
  const row = await findPurchaseResult(trx, purchaseId)
  const stored = row.result as ScanResponse | null
  if (stored?.purchase) return { ...stored, purchase: { ...stored.purchase, replayed: true } }
  if (!row.customer_id) throw new AppError('CONFLICT', 'this receipt was recorded without a member')
  const customer = await memberSummary(trx, row.customer_id)
  return {
    customer,
    purchase: {
      id: row.id,
      total: row.total,
      pointsEarned: row.points_earned,
      pointsUsed: row.points_used,
      points: customer.points,
      replayed: true,
    },
  }
}
