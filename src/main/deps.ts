import { type Env, mailKind } from '../config/env.ts'
import { type Clock, systemClock } from '../platform/clock.ts'
import { createDb } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { createHourlyBudget } from '../platform/hourly-budget.ts'
import { createLine } from '../platform/line.ts'
import { createLinePacing } from '../platform/line-pacing.ts'
import { createLogger, type Logger } from '../platform/logger.ts'
import { createMetrics } from '../platform/metrics.ts'
import { createQueues } from '../platform/queues.ts'
import { createProducerRedis } from '../platform/redis.ts'

export type DepsOptions = {
  log?: Logger
  clock?: Clock
  /** Tests' own prefix; else QUEUE_PREFIX. */
  queuePrefix?: string
  defaultMetrics?: boolean
  /**
   * Count LINE's hourly-limited calls in Redis (the default). Off for the sandbox: each start is
   * a new, empty channel whose stand-in keeps LINE's limits itself, and a budget kept across
   * starts would leave a developer restarting it often without rich menus for an hour.
   */
  lineHourlyBudget?: boolean
  /** A sandbox run: without SMTP_URL its email goes to the sandbox mailbox. */
  sandbox?: boolean
  /** LINE is Kizuna's stand-in (Deps.lineStandIn); by default only on a sandbox run. */
  lineStandIn?: boolean
}

export async function createDeps(env: Env, opts: DepsOptions = {}): Promise<Deps> {
  const log = opts.log ?? createLogger(env.LOG_LEVEL)
  const metrics = createMetrics({ defaultMetrics: opts.defaultMetrics })
  const db = await createDb(env, { log })
  const redis = createProducerRedis(env.REDIS_URL, log)
  const queues = createQueues(redis, log, opts.queuePrefix ?? env.QUEUE_PREFIX)
  const hourly =
    opts.lineHourlyBudget === false ? undefined : createHourlyBudget(redis, queues.prefix)
  // Every other LINE call waits for its endpoint's slot, one schedule per endpoint in Redis.
  const pacing = createLinePacing(redis, queues.prefix, { inFlight: env.LINE_CALLS_UNDER_WAY })
  const line = createLine(env, metrics, { hourly, pacing })
  const mail = mailKind(env, { sandbox: opts.sandbox ?? false })
  const lineStandIn = opts.lineStandIn ?? opts.sandbox ?? false
  return {
    env,
    db,
    queues,
    redis,
    line,
    log,
    clock: opts.clock ?? systemClock,
    metrics,
    mail,
    lineStandIn,
  }
}

export async function closeDeps(deps: Deps): Promise<void> {
  await deps.queues.close()
  await deps.line.close()
  deps.redis.disconnect()
  await deps.db.destroy()
}
