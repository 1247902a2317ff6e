import { Hono } from 'hono'
import { requireKey } from '../auth/require-key.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import type { AppEnv } from '../platform/http.ts'
import { parseInput } from '../platform/input.ts'
import { readRawBody } from '../platform/raw-body.ts'
import { orderSchema } from './order.schemas.ts'
import { recordOrder } from './order.service.ts'

const MAX_BODY_BYTES = 256 * 1024

/** `POST /api/orders` (scope import): one online order; 201 when new, 200 for a replay. */
export function orderRoutes(deps: Pick<Deps, 'db' | 'env'>) {
  return new Hono<AppEnv>().post('/', requireKey(deps.db, 'import'), async (c) => {
    const raw = await readRawBody(c, MAX_BODY_BYTES)
    let body: unknown
    try {
      body = JSON.parse(raw.toString('utf8'))
    } catch {
      throw new AppError('BAD_REQUEST', '(body): not valid JSON')
    }
    const order = parseInput(orderSchema, body)
    const outcome = await deps.db.transaction().execute((trx) => recordOrder(trx, deps.env, order))
    return c.json(outcome, outcome.created ? 201 : 200)
  })
}
