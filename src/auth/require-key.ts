import { createMiddleware } from 'hono/factory'
import type { Database } from '../platform/db.ts'
import type { AppEnv } from '../platform/http.ts'
import { authenticate, type Caller, type Scope } from './api-key.service.ts'

export type KeyEnv = AppEnv & { Variables: AppEnv['Variables'] & { caller: Caller } }

/** Requires `Authorization: Bearer <key>` with `scope`; the caller is then `c.get('caller')`. */
export function requireKey(db: Database, scope: Scope) {
  return createMiddleware<KeyEnv>(async (c, next) => {
    c.set('caller', await authenticate(db, c.req.header('authorization'), scope))
    await next()
  })
}
