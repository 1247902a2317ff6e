import { Hono } from 'hono'
import { z } from 'zod'
import { requireKey } from '../auth/require-key.ts'
import type { Deps } from '../platform/deps.ts'
import { AppError } from '../platform/errors.ts'
import { type AppEnv, describeZodError } from '../platform/http.ts'
import { getCustomerProfileByIdentity } from './customer-profile.service.ts'
import { identityQuerySchema } from './identity-values.ts'

const lookupQuerySchema = z.object({
  identity: z.string({ error: 'required, as kind:value' }).pipe(identityQuerySchema),
})

/** Admin lookups: `GET /api/customers?identity=kind:value` (scope admin). */
export function customerRoutes(deps: Pick<Deps, 'db'>) {
  return new Hono<AppEnv>().get('/', requireKey(deps.db, 'admin'), async (c) => {
    const parsed = lookupQuerySchema.safeParse({ identity: c.req.query('identity') })
    if (!parsed.success) {
      const { message, fields } = describeZodError(parsed.error)
      throw new AppError('BAD_REQUEST', message, { details: fields })
    }
    return c.json(await getCustomerProfileByIdentity(deps.db, parsed.data.identity))
  })
}
