import { Hono } from 'hono'
import { requireKey } from '../auth/require-key.ts'
import type { Deps } from '../platform/deps.ts'
import type { AppEnv } from '../platform/http.ts'
import { jsonInput } from '../platform/input.ts'
import { relinkCustomersSoon } from '../richmenu/richmenu-link.service.ts'
import { orderSchema } from './order.schemas.ts'
import { recordOrder } from './order.service.ts'

const MAX_BODY_BYTES = 256 * 1024

/** `POST /api/orders` (scope import): one online order; 201 when new, 200 for a replay. */
export function orderRoutes(deps: Pick<Deps, 'db' | 'env' | 'queues' | 'log'>) {
  return new Hono<AppEnv>().post('/', requireKey(deps.db, 'import'), async (c) => {
    const order = await jsonInput(c, orderSchema, MAX_BODY_BYTES)
    const outcome = await deps.db.transaction().execute((trx) => recordOrder(trx, deps.env, order))
    // A first purchase, a new tier or a linked shop account: the customer's menus follow.
    if (outcome.created && outcome.customerId) {
      void relinkCustomersSoon(deps, [outcome.customerId], `order-${outcome.purchaseId}`)
    }
    return c.json(outcome, outcome.created ? 201 : 200)
  })
}
