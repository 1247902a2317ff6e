import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/platform/logger.ts'
import { startTestKizuna } from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import { startPrivateRedis } from '../support/private-redis.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

describe('webhook while Redis is a read-only replica', () => {
  it('stores events, logs one outage (not a line per request and job) and catches up once Redis writes again', async () => {
    // After a failover, the connections stay on the old primary, now a replica: it answers
    // reads and PING, and every write says READONLY.
    const redis = await startPrivateRedis()
    const newPrimary = await startPrivateRedis()
    cleanups.push(
      () => redis.stop(),
      () => newPrimary.stop(),
    )
    const database = await createPrivateDatabase()
    cleanups.push(() => database.drop())
    const logs = logSink()
    const k = await startTestKizuna(
      { REDIS_URL: redis.url, DATABASE_URL: database.url, SWEEP_INTERVAL_MS: '1000' },
      { log: createLogger('info', logs.sink) },
    )
    cleanups.push(() => k.stopAll())
    const admin = new Redis(redis.url)
    cleanups.push(async () => void admin.disconnect())

    await admin.replicaof('127.0.0.1', newPrimary.port)
    await eventually(() => expect(admin.set('probe', '1')).rejects.toThrow(/^READONLY/))
    const users = [k.line.users.create(), k.line.users.create()]
    const ids: string[] = []
    const statuses = async () =>
      (
        await k.deps.db
          .selectFrom('webhook_event')
          .select('status')
          .where('webhook_event_id', 'in', ids)
          .execute()
      ).map((r) => r.status)
    for (const user of users) {
      const result = (await k.line.users.follow(user.userId))!
      expect(result.status).toBe(200)
      ids.push(result.body.events[0]!.webhookEventId)
    }
    // Long enough for the workers and the sweeper to try a few times.
    await new Promise((r) => setTimeout(r, 2_500))
    expect(await statuses()).toEqual(['pending', 'pending'])

    await admin.replicaof('NO', 'ONE')
    await eventually(async () => {
      expect(await statuses()).toEqual(['done', 'done'])
      for (const user of users) expect(k.line.inbox(user.userId)).toHaveLength(1)
    }, 40_000)

    const problems = logs.entries().filter((l) => (l.level as number) >= 40)
    // Before, a line per request and thousands of worker errors a second (READONLY).
    expect(problems).toEqual([
      expect.objectContaining({ level: 50, msg: expect.stringContaining('REDIS_URL') }),
    ])
    await eventually(() =>
      expect(logs.entries()).toContainEqual(
        expect.objectContaining({ msg: expect.stringContaining('Redis is reachable again') }),
      ),
    )
  }, 60_000)
})
