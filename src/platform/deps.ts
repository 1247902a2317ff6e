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
}
