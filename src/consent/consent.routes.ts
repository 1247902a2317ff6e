import { Hono } from 'hono'
import { requireKey } from '../auth/require-key.ts'
import { requireCurrentCustomer } from '../customers/surviving-customer.service.ts'
import type { Deps } from '../platform/deps.ts'
import type { AppEnv } from '../platform/http.ts'
import { jsonInput } from '../platform/input.ts'
import { consentUpdateSchema } from './consent.schemas.ts'
import { getCustomerConsent, setConsent } from './consent.service.ts'

const MAX_BODY_BYTES = 4 * 1024

/**
 * Admin consent API (scope admin), mounted under /api/customers:
 * `GET /:id/consent` → `{ customerId, consent }`; `PUT /:id/consent` with
 * `{ category, channel, granted }` → the consents after the change. A merged id leads to the
 * surviving customer; an unknown one is 404, an erased one 410.
 */
export function consentRoutes(deps: Pick<Deps, 'db'>) {
  return new Hono<AppEnv>()
    .get('/:id/consent', requireKey(deps.db, 'admin'), async (c) => {
      const customer = await requireCurrentCustomer(deps.db, c.req.param('id'))
      return c.json(await getCustomerConsent(deps.db, customer))
    })
    .put('/:id/consent', requireKey(deps.db, 'admin'), async (c) => {
      const update = await jsonInput(c, consentUpdateSchema, MAX_BODY_BYTES)
      const { id: customerId } = await requireCurrentCustomer(deps.db, c.req.param('id'))
      const result = await setConsent(deps.db, customerId, { ...update, source: 'admin' })
      return c.json(result)
    })
}
