import { Hono } from 'hono'
import { requireKey } from '../auth/require-key.ts'
import type { Deps } from '../platform/deps.ts'
import type { AppEnv } from '../platform/http.ts'
import { jsonInput, parseInput, queryParamOf } from '../platform/input.ts'
import { consentHistoryQuerySchema, consentUpdateSchema } from './consent.schemas.ts'
import { getCustomerConsent, listConsentHistory, setConsent } from './consent.service.ts'

const MAX_BODY_BYTES = 4 * 1024

/**
 * Admin consent API (scope admin), mounted under /api/customers:
 * `GET /:id/consent` → `{ customerId, consent }`; `PUT /:id/consent` with
 * `{ category, channel, granted }` → the consents after the change (recorded in the history with
 * the caller's key). A merged id leads to the surviving customer; an unknown one is 404, an
 * erased one 410, one that is no uuid 400 naming `id`. `GET /:id/consent/history?limit=&before=` → `{ customerId, history, next }`,
 * newest first, for an erased customer too (listConsentHistory). Each reads or changes the
 * customer in one transaction with it share-locked, so a merge committing meanwhile is followed.
 */
export function consentRoutes(deps: Pick<Deps, 'db'>) {
  return new Hono<AppEnv>()
    .get('/:id/consent', requireKey(deps.db, 'admin'), async (c) => {
      return c.json(await getCustomerConsent(deps.db, c.req.param('id')))
    })
    .put('/:id/consent', requireKey(deps.db, 'admin'), async (c) => {
      const update = await jsonInput(c, consentUpdateSchema, MAX_BODY_BYTES)
      const result = await setConsent(deps.db, c.req.param('id'), {
        ...update,
        source: 'admin',
        apiKeyId: c.get('caller').keyId,
      })
      return c.json(result)
    })
    .get('/:id/consent/history', requireKey(deps.db, 'admin'), async (c) => {
      const page = parseInput(consentHistoryQuerySchema, {
        limit: queryParamOf(c.req.url, 'limit'),
        before: queryParamOf(c.req.url, 'before'),
      })
      return c.json(await listConsentHistory(deps.db, c.req.param('id'), page))
    })
}
