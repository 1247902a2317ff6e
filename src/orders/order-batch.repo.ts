import { sql, type Transaction } from 'kysely'
import type { DB } from '../platform/db.ts'
import { newTimeOrderedId } from '../platform/ids.ts'
import {
  applyPurchasesToCustomers,
  lineArrays,
  type PurchaseTotals,
} from '../purchases/purchase.repo.ts'
import { type PurchaseEnv, pointsFor } from '../purchases/purchase.service.ts'
import { findIdentityHolders } from './identity-holders.repo.ts'
import { type Order, pendingEmailOf, pendingIdentityOf } from './order.schemas.ts'
import type { OrderOutcome } from './order.service.ts'
import { insertPurchasesOnce } from './order-copy.repo.ts'
import { changedField, type RecordedOrder } from './order-replay.ts'
import { findRecordedOrders, batchKey as key } from './recorded-order.repo.ts'

/** Thrown when a batch needs what only the per-order path does (e.g. a merge); not an error. */
export class NeedsPerOrderPath extends Error {}

/**
 * Locks the customers the batch writes to before anything is written (in id order, as merges
 * and the nightly refresh lock), with the lock the batch's update of their stats takes anyway.
 * They were found live without a lock: one merged or erased since (an account link, a card
 * linked at the register, an erasure, committing meanwhile) would get the purchases on its
 * merged row, where no one sees them, or on its erased one. The per-order path follows the merge
 * under its lock instead (NeedsPerOrderPath).
 */
async function lockLiveHolders(trx: Transaction<DB>, customerIds: string[]): Promise<void> {
  if (customerIds.length === 0) return
  const { rows } = await sql<{ live: boolean }>`
    select merged_into_id is null and erased_at is null as live from customer
    where id = any(${[...new Set(customerIds)]}::uuid[])
    order by id for no key update`.execute(trx)
  if (rows.some((r) => !r.live)) {
    throw new NeedsPerOrderPath('a customer was merged or erased while importing')
  }
}

/**
 * The holders were read without a lock: one that got another shop account since (an order,
 * an import row or an account link that committed while lockLiveHolders waited for them) would
 * hold two. Asked once they are locked; the per-order path then keeps such an order apart
 * (NeedsPerOrderPath).
 */
async function assertNoOtherShopAccount(
  trx: Transaction<DB>,
  attaching: { customerId: string; value: string }[],
): Promise<void> {
  const { rows } = await sql`
    select 1 from identity i
    join unnest(${attaching.map((n) => n.customerId)}::uuid[],
      ${attaching.map((n) => n.value)}::text[]) as n(c, v) on i.customer_id = n.c
    where i.kind = 'online_customer' and i.value <> n.v
    limit 1`.execute(trx)
  if (rows.length > 0) {
    throw new NeedsPerOrderPath('a customer got another shop account while importing')
  }
}

type Planned = {
  order: Order
  id: string
  /** The customer the purchase belongs to once the batch is written. */
  customerId: string | null
  /** What the per-order path reports: null for an order that waited, then got attached. */
  reportedCustomerId: string | null
  pending: { kind: string; value: string } | null
  /** The email it waits for too (pendingEmailOf). */
  pendingEmail: string | null
  /** It attaches its online id to the customer its email leads to. */
  attaches: boolean
}

/**
 * Records orders as recordOrder does, one after the other, with a handful of statements for
 * the whole batch: match customers, attach online ids found by email (and the purchases that
 * waited for them), insert purchases (with their lines) once per (source, orderId), points ledger
 * rows and the customers' stats. An email held by a customer with another shop account (held, or
 * given by an earlier order of the batch) matches nothing, as in recordOrder. Throws
 * NeedsPerOrderPath when an order would merge customers, or give a shop account to a customer
 * who got another one while the batch waited for them.
 */
export async function writeOrderBatch(
  trx: Transaction<DB>,
  env: PurchaseEnv,
  orders: Order[],
): Promise<OrderOutcome[]> {
  const lookups: { kind: string; value: string }[] = []
  for (const o of orders) {
    if (o.customer.externalId)
      lookups.push({ kind: 'online_customer', value: o.customer.externalId })
    if (o.customer.email) lookups.push({ kind: 'email', value: o.customer.email })
  }
  const holders = await findIdentityHolders(trx, lookups)
  const live = (kind: string, value: string | undefined) =>
    value === undefined ? null : (holders.get(key(kind, value))?.liveId ?? null)
  // Orders that would attach their online id to the customer their email leads to (or need a
  // merge), looked up before anything is written: one recorded before attaches nothing (as
  // recordOrder's replay), and is checked as a repeat (checkRepeatedOrders).
  const recordedBefore = await findRecordedOrders(
    trx,
    orders.filter(
      ({ customer: c }) =>
        c.externalId && c.email && !live('online_customer', c.externalId) && live('email', c.email),
    ),
  )

  // Online ids attached by an earlier order of this batch, and the orders waiting on them.
  const attachedIds = new Map<string, string>()
  const waiting = new Map<string, Planned[]>()
  const newIdentities: { customerId: string; value: string }[] = []
  const attachPending = new Map<string, string>()
  // A customer's shop accounts: those they held, and those an earlier order of the batch gave.
  const attachedShops = new Map<string, string[]>()
  const holdsOtherShop = (customerId: string, email: string | undefined, shopId: string) =>
    [
      ...(email === undefined ? [] : (holders.get(key('email', email))?.shops ?? [])),
      ...(attachedShops.get(customerId) ?? []),
    ].some((shop) => shop !== shopId)
  const planned: Planned[] = orders.map((order) => {
    const { externalId, email } = order.customer
    let attaches = false
    const byShopId =
      externalId && (attachedIds.get(externalId) ?? live('online_customer', externalId))
    let customerId = byShopId || live('email', email) || null
    // As recordOrder: an email held by a customer with another shop account matches nothing.
    const keptApart = Boolean(
      customerId && !byShopId && externalId && holdsOtherShop(customerId, email, externalId),
    )
    if (keptApart) customerId = null
    if (
      customerId &&
      externalId &&
      email &&
      !recordedBefore.has(key(order.source, order.orderId))
    ) {
      const holder = holders.get(key('online_customer', externalId))
      if (!attachedIds.has(externalId)) {
        if (!holder) {
          attachedIds.set(externalId, customerId)
          attachedShops.set(customerId, [...(attachedShops.get(customerId) ?? []), externalId])
          newIdentities.push({ customerId, value: externalId })
          attaches = true
          for (const p of waiting.get(externalId) ?? []) {
            p.customerId = customerId
            p.pending = null
            p.pendingEmail = null
          }
          waiting.delete(externalId)
        } else if (holder.liveId !== customerId) {
          throw new NeedsPerOrderPath('an order links customers that need merging')
        }
        attachPending.set(externalId, customerId)
      }
    }
    customerId = customerId ?? null
    const plan: Planned = {
      order,
      id: newTimeOrderedId(),
      customerId,
      reportedCustomerId: customerId,
      pending: customerId ? null : pendingIdentityOf(order.customer),
      pendingEmail: customerId || keptApart ? null : pendingEmailOf(order.customer),
      attaches,
    }
    if (!customerId && externalId) {
      const list = waiting.get(externalId) ?? []
      list.push(plan)
      waiting.set(externalId, list)
    }
    return plan
  })

  await lockLiveHolders(trx, [
    ...planned.flatMap((p) => (p.customerId ? [p.customerId] : [])),
    ...attachPending.values(),
  ])

  // Attached online ids: the identity rows, then the purchases that waited for them.
  if (newIdentities.length > 0) {
    await assertNoOtherShopAccount(trx, newIdentities)
    const inserted = await sql`
      insert into identity (customer_id, kind, value)
      select c, 'online_customer', v from unnest(${newIdentities.map((n) => n.customerId)}::uuid[],
        ${newIdentities.map((n) => n.value)}::text[]) as n(c, v)
      on conflict (kind, value) do nothing`.execute(trx)
    if (Number(inserted.numAffectedRows ?? 0) !== newIdentities.length) {
      throw new NeedsPerOrderPath('an online id appeared while importing')
    }
  }
  const rate = env.POINTS_RATE_PERCENT
  const credited: {
    customerId: string
    purchaseId: string
    total: number
    points: number
    at: Date
  }[] = []
  if (attachPending.size > 0) {
    const { rows } = await sql<{
      id: string
      customer_id: string
      total: number
      points_earned: number
      purchased_at: Date
    }>`
      update purchase p set customer_id = a.c, pending_identity_kind = null,
        pending_identity_value = null, pending_email = null,
        points_earned = floor(p.total * ${rate}::numeric / 100)::int
      from unnest(${[...attachPending.keys()]}::text[], ${[...attachPending.values()]}::uuid[]) as a(v, c)
      where p.customer_id is null and p.pending_identity_kind = 'online_customer'
        and p.pending_identity_value = a.v
      returning p.id, p.customer_id, p.total, p.points_earned, p.purchased_at`.execute(trx)
    for (const r of rows) {
      credited.push({
        customerId: r.customer_id,
        purchaseId: r.id,
        total: r.total,
        points: r.points_earned,
        at: r.purchased_at,
      })
    }
  }

  const { created, ids, recorded } = await insertPurchasesOnce(trx, env, planned)
  checkRepeatedOrders(planned, created, recorded)

  for (const p of planned) {
    if (created.has(p.id) && p.customerId) {
      credited.push({
        customerId: p.customerId,
        purchaseId: p.id,
        total: p.order.total,
        points: pointsFor(p.order.total, env),
        at: p.order.orderedAt,
      })
    }
  }

  // Points earned and the customers' stats.
  const earning = credited.filter((c) => c.points > 0)
  if (earning.length > 0) {
    await sql`
      insert into points_ledger (customer_id, delta, reason, purchase_id)
      select c, d, 'earn', p from unnest(${earning.map((e) => e.customerId)}::uuid[],
        ${earning.map((e) => e.points)}::int[], ${earning.map((e) => e.purchaseId)}::uuid[])
        as e(c, d, p)`.execute(trx)
  }
  const perCustomer = new Map<string, PurchaseTotals>()
  for (const c of credited) {
    const s = perCustomer.get(c.customerId)
    if (!s) {
      perCustomer.set(c.customerId, {
        customerId: c.customerId,
        count: 1,
        total: c.total,
        pointsDelta: c.points,
        firstAt: c.at,
        lastAt: c.at,
      })
      continue
    }
    s.count++
    s.total += c.total
    s.pointsDelta += c.points
    if (c.at < s.firstAt) s.firstAt = c.at
    if (c.at > s.lastAt) s.lastAt = c.at
  }
  await applyPurchasesToCustomers(trx, [...perCustomer.values()], env.TIER_THRESHOLDS)

  return planned.map((p) => {
    const createdNow = created.has(p.id)
    const purchaseId = ids.get(key(p.order.source, p.order.orderId))
    if (!purchaseId) throw new Error('purchase conflict without a row')
    const before = recorded.get(key(p.order.source, p.order.orderId))
    const customerId = before ? before.customer_id : p.reportedCustomerId
    return { purchaseId, created: createdNow, customerId }
  })
}

/**
 * An order recorded before (a re-run) or met earlier in the batch is left as it is when it is the
 * same order (changedField, as recordOrder checks it); one that changed, or that attached its
 * online id (met again in the batch, or recorded by another writer after writeOrderBatch looked:
 * recordOrder attaches nothing for an order recorded before), is NeedsPerOrderPath: recordOrder
 * refuses it there by itself, naming the field. A check of the rows already read, no statement of
 * its own.
 */
function checkRepeatedOrders(
  planned: Planned[],
  created: Set<string>,
  recorded: Map<string, RecordedOrder>,
): void {
  const firsts = new Map<string, Planned>()
  for (const p of planned) {
    const k = key(p.order.source, p.order.orderId)
    if (created.has(p.id)) {
      firsts.set(k, p)
      continue
    }
    const first = firsts.get(k)
    const before: RecordedOrder | undefined =
      recorded.get(k) ??
      (first && {
        id: first.id,
        customer_id: first.customerId,
        erased: false,
        total: first.order.total,
        purchased_at: first.order.orderedAt,
        pending_identity_kind: first.pending?.kind ?? null,
        pending_identity_value: first.pending?.value ?? null,
        pending_email: first.pendingEmail,
        ...lineArrays(first.order.lines),
      })
    const sent = {
      total: p.order.total,
      orderedAt: p.order.orderedAt,
      lines: p.order.lines,
      customerId: p.customerId,
      pending: pendingIdentityOf(p.order.customer),
      pendingEmail: pendingEmailOf(p.order.customer),
    }
    if (!before || p.attaches || changedField(before, sent)) {
      throw new NeedsPerOrderPath('an order recorded before comes with other content')
    }
  }
}
