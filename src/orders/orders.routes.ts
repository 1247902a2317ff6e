import { Hono } from 'hono'
import { requireKey } from '../auth/require-key.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import type { AppEnv } from '../platform/http.ts'
import { jsonInput } from '../platform/input.ts'
import { runAgainIfAborted } from '../platform/run-again.ts'
import { relinkCustomersSoon } from '../richmenu/richmenu-link.service.ts'
import { MAX_ORDER_BYTES, orderSchema } from './order.schemas.ts'
import { recordOrder } from './order.service.ts'

const BUSY =
  "busy: this order's customer is being changed by another task (an import, an account link) " +
  'right now; send the order again'

/**
 * `POST /api/orders` (scope import): one online order; 201 when new, 200 for a replay, 503 when
 * it lost a deadlock with another change to its customer 3 times running.
 */
export function orderRoutes(deps: Pick<Deps, 'db' | 'env' | 'queues' | 'log'>) {
  return new Hono<AppEnv>().post('/', requireKey(deps.db, 'import'), async (c) => {
    const order = await jsonInput(c, orderSchema, MAX_ORDER_BYTES)
    // Run again when Postgres aborted it (a deadlock with the customer import or a link).
    const outcome = await runAgainIfAborted(
      () => deps.db.transaction().execute((trx) => recordOrder(trx, deps.env, order)),
      { busy: (cause) => new AppError('UNAVAILABLE', BUSY, { cause }) },
    )
    // A first purchase, a new tier or a linked shop account: the customer's menus follow.
    if (outcome.created && outcome.customerId) {
      void relinkCustomersSoon(deps, [outcome.customerId], `order-${outcome.purchaseId}`)
    }
    return c.json(outcome, outcome.created ? 201 : 200)
  })
}
