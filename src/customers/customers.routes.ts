import { Hono } from 'hono'
import { z } from 'zod'
import { requireKey } from '../auth/require-key.ts'
import type { Deps } from '../platform/deps.ts'
import type { AppEnv } from '../platform/http.ts'
import { parseInput, queryParamOf } from '../platform/input.ts'
import { getCustomerProfileByIdentity } from './customer-profile.service.ts'
import { identityQuerySchema } from './identity-values.ts'

const lookupQuerySchema = z.object({
  identity: z.string({ error: 'required, as kind:value' }).pipe(identityQuerySchema),
})

/** Admin lookups: `GET /api/customers?identity=kind:value` (scope admin). */
export function customerRoutes(deps: Pick<Deps, 'db'>) {
  return new Hono<AppEnv>().get('/', requireKey(deps.db, 'admin'), async (c) => {
    // Not c.req.query: it keeps a value that does not decode as it came (a silent 404).
    const identity = queryParamOf(c.req.url, 'identity')
    const query = parseInput(lookupQuerySchema, { identity })
    return c.json(await getCustomerProfileByIdentity(deps.db, query.identity))
  })
}
