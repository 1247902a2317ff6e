import type { Env, MailKind } from '../config/env.ts'
import type { Clock } from './clock.ts'
import type { Database } from './db.ts'
import type { Line } from './line.ts'
import type { Logger } from './logger.ts'
import type { Metrics } from './metrics.ts'
import type { Queues } from './queues.ts'
import type { Redis } from './redis.ts'

/** Everything a module needs, passed explicitly. */
export type Deps = {
  env: Env
  db: Database
  queues: Queues
  redis: Redis
  line: Line
  log: Logger
  clock: Clock
  metrics: Metrics
  /**
   * Where this process's email goes. A sandbox run's `env` carries the stand-in's LINE
   * credentials, so it cannot tell by itself that mail has the sandbox mailbox.
   */
  mail: MailKind
  /**
   * LINE here is Kizuna's own stand-in (a sandbox run's built-in one, or a test's), which loads
   * http images too. Real LINE, however it is reached (LINE_API_BASE_URL may name a proxy), loads
   * only https images and refuses a whole message holding another (lineLoadsImageUrl).
   */
  lineStandIn: boolean
}
