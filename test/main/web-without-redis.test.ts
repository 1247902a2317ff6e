import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, describe, expect, it } from 'vitest'
import { type Kizuna, startKizuna } from '../../src/main/runtime.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { startLinePlatform } from '../../src/sandbox/platform.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN, testEnv } from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'
import { sparePort } from '../support/ports.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import { startPrivateRedis, testRedisDatabases } from '../support/private-redis.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

async function readiness(k: Kizuna) {
  const res = await fetch(`${k.baseUrl}/readyz`)
  return { status: res.status, body: await res.json() }
}

/** ROLE=web started on a REDIS_URL nothing answers, once it has said "still degraded". */
async function degradedWeb(REDIS_URL: string) {
  const logs = logSink()
  const web = await startKizuna(testEnv({ ROLE: 'web', REDIS_URL }), {
    queuePrefix: `test-${randomUUID()}`,
    log: createLogger('info', logs.sink),
    degradedReminderMs: 100,
  })
  cleanups.push(() => web.stop())
  const stillDegraded = () => logs.entries().filter((l) => /still degraded/.test(String(l.msg)))
  await eventually(() => expect(stillDegraded().length, REDIS_URL).toBeGreaterThanOrEqual(1))
  return { web, logs, stillDegraded }
}

/** No more of `lines` come in ten reminders' time. */
async function expectNoMore(lines: () => unknown[]) {
  const said = lines().length
  await sleep(1_000)
  expect(lines()).toHaveLength(said)
}

describe('a process started while Redis is down', () => {
  it('serves ROLE=web degraded, storing webhook events the sweeper queues once Redis is up', async () => {
    // A web process restarted during a Redis outage exited, again and again, while the one
    // that kept running stayed ready (degraded) and stored LINE's events.
    const line = await startLinePlatform({
      channelSecret: TEST_CHANNEL_SECRET,
      channelAccessToken: TEST_CHANNEL_TOKEN,
    })
    cleanups.push(() => line.close())
    const database = await createPrivateDatabase()
    cleanups.push(() => database.drop())
    const redisPort = await sparePort() // nothing listens there yet
    const overrides = {
      DATABASE_URL: database.url,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      LINE_API_BASE_URL: line.apiBaseUrl,
      LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
      SWEEP_INTERVAL_MS: '1000',
    }
    const queuePrefix = `test-${randomUUID()}`
    const logs = logSink()
    const web = await startKizuna(testEnv({ ...overrides, ROLE: 'web' }), {
      queuePrefix,
      log: createLogger('info', logs.sink),
    })
    cleanups.push(() => web.stop())
    line.setWebhookUrl(`${web.baseUrl}/webhooks/line`)

    expect(await readiness(web)).toEqual({
      status: 200,
      body: { status: 'degraded', postgres: 'ok', redis: 'unreachable' },
    })
    // LINE's webhook, signed with the channel secret, is stored.
    const user = line.users.create()
    const followed = (await line.users.follow(user.userId))!
    expect(followed.status).toBe(200)
    const webhookEventId = followed.body.events[0]!.webhookEventId
    const stored = () =>
      web.deps.db
        .selectFrom('webhook_event')
        .select('status')
        .where('webhook_event_id', '=', webhookEventId)
        .executeTakeFirstOrThrow()
    expect(await stored()).toEqual({ status: 'pending' })
    // Said at start-up (an error: REDIS_URL may be wrong), then the outage and /readyz's state
    // once each, as for an outage that began while it ran: no line per request or reconnection
    // attempt.
    const problems = logs.entries().filter((l) => (l.level as number) >= 40)
    expect(problems).toHaveLength(3)
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          level: 50,
          msg: expect.stringMatching(
            new RegExp(
              `^Redis is unreachable at REDIS_URL \\(redis://127\\.0\\.0\\.1:${redisPort}\\): connect ECONNREFUSED .* Starting all the same \\(ROLE=web\\)`,
            ),
          ),
        }),
        expect.objectContaining({ level: 50, msg: expect.stringContaining('REDIS_URL') }),
        expect.objectContaining({ level: 40, msg: 'readiness: redis unreachable' }),
      ]),
    )

    // Redis comes up; a worker's sweeper queues the stored event, and the web process is ready.
    const redis = await startPrivateRedis(redisPort)
    cleanups.push(() => redis.stop())
    const worker = await startKizuna(testEnv({ ...overrides, ROLE: 'worker' }), {
      queuePrefix,
      deployRichMenus: false,
    })
    cleanups.push(() => worker.stop())
    await eventually(async () => {
      expect(await stored()).toEqual({ status: 'done' })
      expect(line.inbox(user.userId)).toHaveLength(1)
    }, 40_000)
    await eventually(async () =>
      expect((await readiness(web)).body).toEqual({ status: 'ready', postgres: 'ok', redis: 'ok' }),
    )
  }, 60_000)

  it('says so again while it runs degraded, until Redis answers', async () => {
    // A mistyped host (ENOTFOUND) looks like an outage, and the one warning at start-up
    // scrolled away while the process ran degraded for good.
    for (const REDIS_URL of [
      'redis://no-such-host.invalid:6379',
      `redis://127.0.0.1:${await sparePort()}`,
    ]) {
      const { web, logs } = await degradedWeb(REDIS_URL)
      const reminders = () =>
        logs
          .entries()
          .filter(
            (l) =>
              l.level === 50 &&
              /^Redis is unreachable at REDIS_URL .*\(ROLE=web\)/.test(String(l.msg)),
          )
      await eventually(() => expect(reminders().length, REDIS_URL).toBeGreaterThanOrEqual(3))
      expect(reminders()[0]!.msg).toMatch(/ENOTFOUND|EAI_AGAIN|ECONNREFUSED/)
      expect(reminders().at(-1)!.msg).toMatch(/still degraded/)
      await web.stop()
    }

    // Once Redis answers, no more.
    const redisPort = await sparePort()
    const { web, stillDegraded } = await degradedWeb(`redis://127.0.0.1:${redisPort}`)
    const redis = await startPrivateRedis(redisPort)
    cleanups.push(() => redis.stop())
    await eventually(async () =>
      expect((await readiness(web)).body).toEqual({ status: 'ready', postgres: 'ok', redis: 'ok' }),
    )
    await expectNoMore(stillDegraded)
    await web.stop()
  })

  it('says nothing more once stopped while degraded', async () => {
    // The reminder was left running by stop(): a stopped process kept logging "still degraded".
    const { web, stillDegraded } = await degradedWeb(`redis://127.0.0.1:${await sparePort()}`)
    await web.stop()
    await expectNoMore(stillDegraded)
  })

  it('refuses to start ROLE=all and ROLE=worker, whose work is the queues', async () => {
    const url = `redis://127.0.0.1:${await sparePort()}`
    for (const ROLE of ['all', 'worker']) {
      await expect(
        startKizuna(testEnv({ ROLE, REDIS_URL: url }), { queuePrefix: `test-${randomUUID()}` }),
        ROLE,
      ).rejects.toThrow(/^Redis is unreachable at REDIS_URL .*Start Redis/)
    }
  })

  it('refuses to start ROLE=web on a Redis that refuses its set-up (a database it does not have)', async () => {
    const { missing } = await testRedisDatabases()
    await expect(
      startKizuna(testEnv({ ROLE: 'web', REDIS_URL: missing }), {
        queuePrefix: `test-${randomUUID()}`,
      }),
    ).rejects.toThrow(/refused the connection's set-up: ERR DB index is out of range/)
  })
})
