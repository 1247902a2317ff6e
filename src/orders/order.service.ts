import { sql, type Transaction } from 'kysely'
import { findCustomerByIdentity } from '../customers/customer-lookup.service.ts'
import { attachIdentity } from '../customers/merge.service.ts'
import type { Database, DB } from '../platform/db.ts'
import { type PurchaseEnv, recordPurchase } from '../purchases/purchase.service.ts'
import { setPendingEmail } from './order.repo.ts'
import { type Order, pendingEmailOf, pendingIdentityOf } from './order.schemas.ts'
import { writeOrderBatch } from './order-batch.repo.ts'
import {
  changedField,
  changedOrderError,
  type RecordedOrder,
  type SentOrder,
} from './order-replay.ts'
import { batchKey, findRecordedOrders } from './recorded-order.repo.ts'

export type OrderOutcome = {
  purchaseId: string
  created: boolean
  /** null: kept unmatched until the customer's online id or email appears. */
  customerId: string | null
}

/**
 * Records one online order once per (source, orderId), matched to a customer by online
 * customer id, else by email. An unmatched order waits on its online id and on its email.
 * Sent again, it is checked against the recorded one (replayOfOrder) and nothing is written.
 */
export async function recordOrder(
  trx: Transaction<DB>,
  env: PurchaseEnv,
  order: Order,
): Promise<OrderOutcome> {
  const first = await findRecordedOrder(trx, order)
  if (first) return replayOfOrder(trx, order, first)
  const { externalId, email } = order.customer
  let customerId = await findOrderCustomer(trx, order.customer)
  let attaching = false
  if (customerId && externalId && email) {
    // Matched by email: the shop account id now leads to this customer too. Taken back when
    // another request records the order meanwhile: an order sent again writes nothing.
    await sql`savepoint kizuna_order_attach`.execute(trx)
    attaching = true
    const attached = await attachIdentity(trx, customerId, 'online_customer', externalId, {
      env,
      reason: 'order',
    })
    customerId = attached.customerId
  }
  const pendingIdentity = customerId ? null : pendingIdentityOf(order.customer)
  const recorded = await recordPurchase(trx, env, {
    channel: 'online',
    source: order.source,
    externalId: order.orderId,
    customerId,
    pendingIdentity,
    purchasedAt: order.orderedAt,
    lines: order.lines,
    total: order.total,
  })
  if (!recorded.created) {
    // Recorded meanwhile by another request: checked the same way, with nothing written.
    if (attaching) await sql`rollback to savepoint kizuna_order_attach`.execute(trx)
    const raced = await findRecordedOrder(trx, order)
    if (!raced) throw new Error('purchase conflict without a row')
    return replayOfOrder(trx, order, raced)
  }
  const pendingEmail = customerId ? null : pendingEmailOf(order.customer)
  if (pendingEmail) await setPendingEmail(trx, recorded.purchaseId, pendingEmail)
  return { ...recorded, customerId }
}

/** The order recorded under the order's (source, orderId), as changedField reads it. */
async function findRecordedOrder(trx: Transaction<DB>, order: Order) {
  const recorded = await findRecordedOrders(trx, [order])
  return recorded.get(batchKey(order.source, order.orderId))
}

/** The live customer an order's online customer id, else its email, leads to. */
async function findOrderCustomer(trx: Transaction<DB>, customer: Order['customer']) {
  const { externalId, email } = customer
  return (
    (externalId && (await findCustomerByIdentity(trx, 'online_customer', externalId))) ||
    (email && (await findCustomerByIdentity(trx, 'email', email))) ||
    null
  )
}

/**
 * An order sent again (the shop missed our answer): the first answer, with the customer who holds
 * the order now (merges followed; null when erased), and nothing is written, not even an identity
 * it names. A different order under its id (another customer, another total, other lines:
 * changedField) is a 409 naming the field.
 */
async function replayOfOrder(
  trx: Transaction<DB>,
  order: Order,
  recorded: RecordedOrder,
): Promise<OrderOutcome> {
  const sent: SentOrder = {
    total: order.total,
    lines: order.lines,
    customerId: recorded.erased ? null : await findOrderCustomer(trx, order.customer),
    pending: pendingIdentityOf(order.customer),
    pendingEmail: pendingEmailOf(order.customer),
  }
  const changed = changedField(recorded, sent)
  if (changed) throw changedOrderError(order, changed)
  return { purchaseId: recorded.id, created: false, customerId: recorded.customer_id }
}

export type BatchResult = { outcome: OrderOutcome } | { error: unknown }

/**
 * Records orders in one transaction with a handful of set-based statements (writeOrderBatch).
 * When that fails, the batch is recorded again one order at a time, each under a savepoint,
 * so one failing order is reported without losing the others.
 */
export async function recordOrderBatch(
  db: Database,
  env: PurchaseEnv,
  orders: Order[],
): Promise<BatchResult[]> {
  if (orders.length === 0) return []
  try {
    const outcomes = await db.transaction().execute((trx) => writeOrderBatch(trx, env, orders))
    return outcomes.map((outcome) => ({ outcome }))
  } catch {
    return recordOrdersOneByOne(db, env, orders)
  }
}

/** Records orders in one transaction, each under a savepoint. */
export async function recordOrdersOneByOne(
  db: Database,
  env: PurchaseEnv,
  orders: Order[],
): Promise<BatchResult[]> {
  return db.transaction().execute(async (trx) => {
    const results: BatchResult[] = []
    for (const order of orders) {
      await sql`savepoint kizuna_order`.execute(trx)
      try {
        results.push({ outcome: await recordOrder(trx, env, order) })
        await sql`release savepoint kizuna_order`.execute(trx)
      } catch (error) {
        await sql`rollback to savepoint kizuna_order`.execute(trx)
        results.push({ error })
      }
    }
    return results
  })
}
