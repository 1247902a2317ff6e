import { once } from 'node:events'
import { pino } from 'pino'
import type { Env } from '../config/env.ts'
import { createLogger } from '../platform/logger.ts'
import { createQueues } from '../platform/queues.ts'
import { assertRedisReachable, createProducerRedis, type Redis } from '../platform/redis.ts'
import { enqueueRelink } from '../richmenu/richmenu-link.service.ts'

/** Redis, ready for commands (a producer connection refuses them until then). */
export async function connectRedis(env: Pick<Env, 'REDIS_URL'>): Promise<Redis> {
  await assertRedisReachable(env.REDIS_URL)
  const redis = createProducerRedis(env.REDIS_URL)
  try {
    if (redis.status !== 'ready') {
      await once(redis, 'ready', { signal: AbortSignal.timeout(3_000) })
    }
  } catch (error) {
    redis.disconnect()
    throw error
  }
  return redis
}

/**
 * Queues one `richmenu.relink` for the workers after a CLI command changed what decides menus (a
 * deploy, an import): everyone whose menu differs from their segment's is linked again. Never
 * fails the command: when Redis cannot take the job, says why (the nightly relink does it then;
 * after a deploy, which records the relink as owed, the next deploy queues it too). With
 * `redis`, uses that connection.
 */
export async function queueRelinkFromCli(
  env: Pick<Env, 'REDIS_URL' | 'QUEUE_PREFIX' | 'LOG_LEVEL'>,
  cause: string,
  redis?: Redis,
): Promise<{ queued: true } | { queued: false; why: string }> {
  let own: Redis | null = null
  try {
    own = redis ? null : await connectRedis(env)
    // Logs go to stderr: stdout is the command's report.
    const log = createLogger(env.LOG_LEVEL, pino.destination(2))
    const queues = createQueues((redis ?? own) as Redis, log, env.QUEUE_PREFIX)
    try {
      await enqueueRelink({ queues }, `${cause}-${Date.now()}`)
    } finally {
      await queues.close()
    }
    return { queued: true }
  } catch (error) {
    return { queued: false, why: error instanceof Error ? error.message : String(error) }
  } finally {
    own?.disconnect()
  }
}

/**
 * After a CLI command that changed customers (an import, a spend refresh): one relink for the
 * workers, so that people whose segment changed (a first purchase, a new tier, a linked shop
 * account) get their menu within minutes rather than at the nightly relink. Reported on stdout;
 * never fails the command.
 */
export async function relinkChangedCustomers(env: Env, cause: string): Promise<void> {
  const result = await queueRelinkFromCli(env, cause)
  if (result.queued) {
    console.log('rich menus: re-linking queued (the workers move people whose segment changed)')
    return
  }
  console.error(
    `rich menus: could not queue the re-linking (${result.why}): the nightly relink does it`,
  )
}
