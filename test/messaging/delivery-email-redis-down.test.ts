import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMailer } from '../../src/email/mailer.ts'
import { createLineLimiters, messageVarsLoaders } from '../../src/main/processors.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { createSendDeliveries } from '../../src/messaging/delivery.jobs.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import { startPrivateRedis } from '../support/private-redis.ts'
import { type Smtp, startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'
import { deliveryRows, emailNotices } from './support.ts'

/** A lease of seconds, not ten minutes: the job starts emails during its first half only. */
const LEASE_SECONDS = 5

const cleanups: (() => Promise<void>)[] = []
let smtp: Smtp
let deps: Deps
let redis: Awaited<ReturnType<typeof startPrivateRedis>> & { stopped?: boolean }
const stopRedis = async () => {
  await redis.stop()
  redis.stopped = true
}
/** Starts it again, and waits until Kizuna's connection is back. */
const restartRedis = async () => {
  redis = await startPrivateRedis(redis.port)
  await eventually(async () => expect(await deps.redis.ping()).toBe('PONG'))
}
beforeAll(async () => {
  smtp = await startSmtp()
  cleanups.push(() => smtp.close())
  // A Redis of its own, which the test stops.
  redis = await startPrivateRedis()
  cleanups.push(() => redis.stop())
  const started = await startPrivateDeps(cleanups, {
    REDIS_URL: redis.url,
    SMTP_URL: smtp.url,
    MAIL_FROM: 'Kizuna Shop <shop@kizuna.test>',
    PUBLIC_BASE_URL: 'https://crm.kizuna.test',
    QUIET_HOURS: '',
  })
  deps = started.deps
  // Back for the queues' own cleanup, if a test left it down.
  cleanups.push(async () => {
    if (redis.stopped) await restartRedis()
  })
})
afterAll(async () => {
  smtp?.answerStalled()
  for (const fn of cleanups.reverse()) await fn()
})

const rowsOf = (ids: string[]) => deliveryRows({ deps }, ids)

describe('a send job whose last try meets a Redis outage', () => {
  it('fails the emails it tried, and leaves those it handed back unsent to the sweeper', async () => {
    const { ids } = await emailNotices(deps, 20)
    // The server answers nothing: each email is given up after a quarter of the lease, and the
    // job starts none after half of it. Redis is down when it queues those again.
    smtp.stall('MAIL FROM')
    await stopRedis()
    const mailer = createMailer(deps.env, deps.db, { sandbox: false })
    cleanups.push(async () => mailer.close())
    const job = createSendDeliveries({
      mailer,
      limiters: createLineLimiters(deps),
      loaders: messageVarsLoaders(deps.env),
      leaseSeconds: LEASE_SECONDS,
    })
    const lastTry = { attemptsMade: 9, opts: { attempts: 10 } }
    const ctx = { job: lastTry as never, worker: {} as never, token: 't' }
    const error = (await job.run(deps, { deliveryIds: ids }, ctx).catch((e: Error) => e)) as Error
    expect(error).toBeInstanceOf(Error)
    expect(error.message).not.toMatch(/deliveries failed for now/)
    const rows = await rowsOf(ids)
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => 'pending'))
    const tried = rows.filter((r) => r.last_error !== null).map((r) => r.id)
    const unsent = rows.filter((r) => r.last_error === null).map((r) => r.id)
    // Some started (at the server, or waiting for a connection) before the window closed, and
    // some never did: both kinds are checked below.
    expect(tried.length).toBeGreaterThan(0)
    expect(unsent.length).toBeGreaterThan(0)
    expect(smtp.stalled).toBeGreaterThan(0)
    expect(smtp.stalled).toBeLessThanOrEqual(tried.length)
    // As the worker does after a last try that failed.
    await job.onFinalFailure?.(deps, { deliveryIds: ids }, error)

    // No retry follows for the ones it tried; the ones it never started are not failed.
    for (const r of await rowsOf(tried)) expect(r.status).toBe('failed')
    for (const r of await rowsOf(unsent)) expect(r).toMatchObject({ status: 'pending' })
    smtp.stall(null)
    smtp.answerStalled()

    // Redis is back: the sweeper queues them.
    await restartRedis()
    await eventually(async () => {
      expect((await sweepOnce(deps, 0, LEASE_SECONDS)).deliveries).toBe(unsent.length)
    })
    const waiting = await deps.queues.byName.delivery.getJobs(['wait'])
    const queued = waiting.flatMap((j) => (j.data as { deliveryIds: string[] }).deliveryIds)
    expect(queued.sort()).toEqual([...unsent].sort())
  })
})
