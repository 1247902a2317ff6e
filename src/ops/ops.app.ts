import { Hono } from 'hono'
import type { Deps } from '../platform/deps.ts'
import { type AppEnv, notFound, onError, requestContext } from '../platform/http.ts'
import { opsRoutes } from './ops.routes.ts'

/**
 * What a ROLE=worker process serves: health, readiness and metrics only. The job, LINE-call and
 * delivery counters live in the worker's registry, so without this they could not be scraped.
 */
export function createOpsApp(deps: Pick<Deps, 'db' | 'redis' | 'metrics' | 'log' | 'env'>) {
  const app = new Hono<AppEnv>()
  app.use(...requestContext(deps.log, deps.metrics))
  app.onError(onError)
  app.notFound(notFound)
  app.route('/', opsRoutes(deps))
  return app
}
