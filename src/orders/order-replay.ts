import { AppError, type FieldProblem } from '../platform/errors.ts'
import type { PurchaseLine } from '../purchases/purchase.repo.ts'
import { linesChange, type RecordedLines } from '../purchases/same-lines.ts'
import type { Order } from './order.schemas.ts'

/** What an order sent again is checked against: the purchase recorded for it (findRecordedOrders). */
export type RecordedOrder = RecordedLines & {
  id: string
  /** The customer holding it now (merges followed); null when unmatched or that one is erased. */
  customer_id: string | null
  /** Its customer was erased since. */
  erased: boolean
  total: number
  /** When it was ordered (purchase.purchased_at). */
  purchased_at: Date
  pending_identity_kind: string | null
  pending_identity_value: string | null
  /** null also for an order recorded before it was kept (migration 20261207T040100). */
  pending_email: string | null
}

/** The order as sent again: the customer it leads to, or the identities it waits on. */
export type SentOrder = {
  total: number
  orderedAt: Date
  lines: readonly PurchaseLine[]
  customerId: string | null
  pending: { kind: string; value: string } | null
  pendingEmail: string | null
}

/**
 * How an order sent again under a recorded (source, orderId) differs from the recorded one, or
 * null: the same order. The one definition of "the same order", for one order (recordOrder) and
 * for a batch (writeOrderBatch). The customer is checked first, and then says nothing of the
 * recorded order (it may be someone else's). A recorded order without a customer is the same when
 * it names the identities it waits on (one of them held by now is the nightly refresh's to
 * attach); a recorded pending email of null is unknown (kept only since 20261207T040100), not
 * "none". An erased customer's order has no identities left to compare: only its total, lines
 * and time are (kept, anonymised), and anyone may send its id, so its 409 names the field but
 * never the recorded total, goods or time (the erased person's purchase). The same total with
 * other goods is another order (linesChange), and so is one ordered at another instant (the same
 * instant written in another offset is the same order).
 */
export function changedField(recorded: RecordedOrder, sent: SentOrder): FieldProblem | null {
  const sameCustomer =
    recorded.erased ||
    (recorded.customer_id !== null
      ? recorded.customer_id === sent.customerId
      : recorded.pending_identity_kind === (sent.pending?.kind ?? null) &&
        recorded.pending_identity_value === (sent.pending?.value ?? null) &&
        (recorded.pending_email === null || recorded.pending_email === sent.pendingEmail))
  if (!sameCustomer)
    return { field: 'customer', message: 'was recorded before for another customer' }
  if (recorded.total !== sent.total) {
    const told = recorded.erased ? 'another total' : `total ${recorded.total}`
    return { field: 'total', message: `was recorded before with ${told}` }
  }
  const lines = linesChange(recorded, sent.lines)
  if (lines) {
    const told = recorded.erased ? '' : ` (${lines})`
    return { field: 'lines', message: `was recorded before with other lines${told}` }
  }
  if (recorded.purchased_at.getTime() !== sent.orderedAt.getTime()) {
    const told = recorded.erased ? 'another time' : recorded.purchased_at.toISOString()
    return { field: 'orderedAt', message: `was recorded before as ordered at ${told}` }
  }
  return null
}

/** A 409 naming the field an order sent again changed: a changed order needs its own id. */
export function changedOrderError(order: Order, changed: FieldProblem): AppError {
  const message =
    `${changed.field}: order ${order.orderId} ${changed.message}; nothing was changed: a ` +
    'different order needs its own order id'
  return new AppError('CONFLICT', message, { details: [changed] })
}
