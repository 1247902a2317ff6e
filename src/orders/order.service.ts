import { sql, type Transaction } from 'kysely'
import { findCustomerByIdentity } from '../customers/customer-lookup.service.ts'
import { attachIdentity, OtherShopAccount } from '../customers/merge.service.ts'
import type { Database, DB } from '../platform/db.ts'
import {
  AppError,
  isConnectionError,
  isRunAgainError,
  isTimedOutStatement,
} from '../platform/errors.ts'
import { runAgainIfAborted } from '../platform/run-again.ts'
import { type PurchaseEnv, recordPurchase } from '../purchases/purchase.service.ts'
import { erasedCustomerError } from './erased-order-customer.ts'
import { setPendingEmail } from './order.repo.ts'
import { type Order, pendingEmailOf, pendingIdentityOf } from './order.schemas.ts'
import { writeOrderBatch } from './order-batch.repo.ts'
import {
  changedField,
  changedOrderError,
  type RecordedOrder,
  type SentOrder,
} from './order-replay.ts'
import { acceptOrderSource } from './order-source.ts'
import { batchKey, findRecordedOrders } from './recorded-order.repo.ts'

export type OrderOutcome = {
  purchaseId: string
  created: boolean
  /** null: kept unmatched until the customer's online id or email appears. */
  customerId: string | null
}

/**
 * Records one online order once per (source, orderId), matched to a customer by online
 * customer id, else by email. An unmatched order waits on its online id and on its email. An
 * email held by a customer with another online id matches nothing: the order waits on its
 * online id only (two shop accounts are never merged).
 * Sent again, it is checked against the recorded one (replayOfOrder) and nothing is written.
 * One that leads to a customer erased on request is GONE, naming the field that leads there
 * (erasedCustomerError); one naming a recorded source in other letter case is refused
 * (acceptOrderSource).
 */
export async function recordOrder(
  trx: Transaction<DB>,
  env: PurchaseEnv,
  order: Order,
): Promise<OrderOutcome> {
  await acceptOrderSource(trx, order.source)
  try {
    return await matchAndRecord(trx, env, order)
  } catch (error) {
    if (error instanceof AppError && error.code === 'GONE') {
      throw await erasedCustomerError(trx, order.customer)
    }
    throw error
  }
}

async function matchAndRecord(
  trx: Transaction<DB>,
  env: PurchaseEnv,
  order: Order,
): Promise<OrderOutcome> {
  const first = await findRecordedOrder(trx, order)
  if (first) return replayOfOrder(trx, order, first)
  const { externalId, email } = order.customer
  let customerId = await findOrderCustomer(trx, order.customer)
  let attaching = false
  let keptApart = false
  if (customerId && externalId && email) {
    // Matched by email: the shop account id now leads to this customer too. Taken back when
    // another request records the order meanwhile: an order sent again writes nothing. (Matched
    // by the shop account id, the customer holds it already: the orders waiting on it attach.)
    await sql`savepoint kizuna_order_attach`.execute(trx)
    try {
      const attached = await attachIdentity(trx, customerId, 'online_customer', externalId, {
        env,
        reason: 'order',
      })
      customerId = attached.customerId
      attaching = true
    } catch (error) {
      if (!(error instanceof OtherShopAccount)) throw error
      // The email's holder has another shop account, asked with them locked (one an order gave
      // them while this one waited for them counts): kept unmatched, waiting for its own shop
      // account only (never on the email's holder: two shop accounts are never merged).
      await sql`rollback to savepoint kizuna_order_attach`.execute(trx)
      customerId = null
      keptApart = true
    }
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
  // Not the email another customer holds: the nightly refresh would give them the order.
  const pendingEmail = customerId || keptApart ? null : pendingEmailOf(order.customer)
  if (pendingEmail) await setPendingEmail(trx, recorded.purchaseId, pendingEmail)
  // The customer it was written to, locked: the one found (without a lock) may have been merged
  // into another since (an account link), whose menus then follow the order.
  return { purchaseId: recorded.purchaseId, created: true, customerId: recorded.customerId }
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
 * it names. A different order under its id (another customer, another total, other lines,
 * another time: changedField) is a 409 naming the field.
 */
async function replayOfOrder(
  trx: Transaction<DB>,
  order: Order,
  recorded: RecordedOrder,
): Promise<OrderOutcome> {
  const sent: SentOrder = {
    total: order.total,
    orderedAt: order.orderedAt,
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
 * An order Postgres aborted each time it ran (a deadlock with an account link, a register or
 * another import changing its customer), or gave up on (a lock or statement timeout: its customer
 * held by another task that long, or Postgres that slow): nothing of it was written.
 */
function busyOrder(cause: unknown): AppError {
  const why = isTimedOutStatement(cause)
    ? 'Postgres gave up on this order (a lock or statement timeout)'
    : "this order's customer was being changed by another task (an account link, a register, " +
      'another import)'
  const message =
    `busy: ${why} each time it was saved, so it was not; import the file again (the orders ` +
    'saved are then counted unchanged)'
  return new AppError('UNAVAILABLE', message, { cause })
}

/**
 * A batch cut short by what no order causes, Postgres going away (or unable to write) above all:
 * the import stops rather than reporting every order after as a bad one. `saved`: the batch's
 * orders committed before (recordOrdersOneByOne commits them as it goes).
 */
export class BatchCutShort extends Error {
  override name = 'BatchCutShort'
  readonly saved: BatchResult[]
  constructor(saved: BatchResult[], cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause })
    this.saved = saved
  }
}

/** An error no order causes: Postgres cannot be reached, or cannot write (read-only). */
const isOutage = (error: unknown) => !(error instanceof AppError) && isConnectionError(error)

/**
 * Records orders in one transaction with a handful of set-based statements (writeOrderBatch),
 * run again when Postgres aborted it (a deadlock with an account link or a register) or gave up
 * on it (a lock or statement timeout): nothing of it stayed, and one order at a time costs ~5 ms
 * an order, ~25 s a batch. When it fails
 * otherwise, or keeps being aborted, the batch is recorded again one order at a time, so one
 * failing order is reported without losing the others. Throws BatchCutShort when Postgres went
 * away or cannot write.
 */
export async function recordOrderBatch(
  db: Database,
  env: PurchaseEnv,
  orders: Order[],
): Promise<BatchResult[]> {
  if (orders.length === 0) return []
  try {
    const sources = new Set(orders.map((o) => o.source))
    const outcomes = await runAgainIfAborted(
      () =>
        db.transaction().execute(async (trx) => {
          // One refused fails the batch: one order at a time, those orders are refused.
          for (const source of sources) await acceptOrderSource(trx, source)
          return writeOrderBatch(trx, env, orders)
        }),
      { again: isRunAgainError },
    )
    return outcomes.map((outcome) => ({ outcome }))
  } catch (error) {
    if (isOutage(error)) throw new BatchCutShort([], error)
    return recordOrdersOneByOne(db, env, orders)
  }
}

/**
 * Orders written one at a time are committed this many at a time, or once a transaction has
 * taken this long: each holds its customer locked until commit, and a register's receipt for that
 * customer waits that long (one transaction for a whole batch of 5000 took ~25 s). A commit
 * costs ~1 ms.
 */
const CHUNK_ORDERS = 50
const CHUNK_MS = 250

/**
 * Records orders one at a time, in order: each under a savepoint, in transactions of up to
 * CHUNK_ORDERS orders or CHUNK_MS, each committed before the next starts. An order Postgres
 * aborted or gave up on (isRunAgainError) is taken back to its savepoint, the orders before it
 * are committed (their locks held on could abort it again), and it is run again on its own as
 * `POST /api/orders` runs it (runAgainIfAborted; after the last run it is reported busy), then
 * the others go on in a new transaction. Nothing of an aborted run stays, and a run stopped
 * between two transactions leaves the orders of the committed ones recorded, found (unchanged)
 * when run again: each is recorded once, by (source, orderId).
 */
export async function recordOrdersOneByOne(
  db: Database,
  env: PurchaseEnv,
  orders: Order[],
): Promise<BatchResult[]> {
  const results: BatchResult[] = []
  try {
    while (results.length < orders.length) {
      const from = results.length
      const chunk = await db.transaction().execute((trx) => recordChunk(trx, env, orders, from))
      results.push(...chunk.results)
      const aborted = chunk.aborted ? orders[results.length] : undefined
      if (aborted) results.push(await recordAlone(db, env, aborted))
    }
  } catch (error) {
    throw new BatchCutShort(results, error)
  }
  return results
}

/**
 * Records orders from `from` on in the caller's transaction, each under a savepoint, up to
 * CHUNK_ORDERS of them or CHUNK_MS, or up to the first one Postgres aborted or gave up on
 * (`aborted`: taken back; its result is not in the list).
 */
async function recordChunk(
  trx: Transaction<DB>,
  env: PurchaseEnv,
  orders: Order[],
  from: number,
): Promise<{ results: BatchResult[]; aborted: boolean }> {
  const results: BatchResult[] = []
  const started = performance.now()
  for (
    let i = from;
    i < orders.length && results.length < CHUNK_ORDERS && performance.now() - started < CHUNK_MS;
    i++
  ) {
    await sql`savepoint kizuna_order`.execute(trx)
    try {
      results.push({ outcome: await recordOrder(trx, env, orders[i] as Order) })
      await sql`release savepoint kizuna_order`.execute(trx)
    } catch (error) {
      if (isOutage(error)) throw error
      await sql`rollback to savepoint kizuna_order`.execute(trx)
      if (isRunAgainError(error)) return { results, aborted: true }
      results.push({ error })
    }
  }
  return { results, aborted: false }
}

/** One order in transactions of its own, run again while Postgres aborts it or gives up on it. */
async function recordAlone(db: Database, env: PurchaseEnv, order: Order): Promise<BatchResult> {
  try {
    const outcome = await runAgainIfAborted(
      () => db.transaction().execute((trx) => recordOrder(trx, env, order)),
      { again: isRunAgainError, busy: busyOrder },
    )
    return { outcome }
  } catch (error) {
    if (isOutage(error)) throw error
    return { error }
  }
}
