import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { connect } from 'node:net'
import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.ts'
import { createMailer } from '../../src/email/mailer.ts'
import { closeDeps, createDeps } from '../../src/main/deps.ts'
import { migrateToLatest } from '../../src/main/migrate.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { startLinePlatform } from '../../src/sandbox/platform.ts'
import { createInbox } from '../../src/webhook/inbox.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { startFrozenProxy } from '../support/frozen-proxy.ts'
import {
  errorOf,
  sign,
  startTestKizuna,
  TEST_CHANNEL_SECRET,
  TEST_CHANNEL_TOKEN,
  testEnv,
} from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import { startPrivateRedis } from '../support/private-redis.ts'
import { eventually } from '../support/wait.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

describe('webhook during outages', () => {
  it('answers 200 while Redis is down, then processes the event when Redis returns', async () => {
    const redis = await startPrivateRedis()
    let current = redis
    cleanups.push(() => current.stop())
    const database = await createPrivateDatabase()
    cleanups.push(() => database.drop())
    const logs = logSink()
    const k = await startTestKizuna(
      { REDIS_URL: redis.url, DATABASE_URL: database.url, SWEEP_INTERVAL_MS: '1000' },
      { log: createLogger('info', logs.sink) },
    )
    cleanups.push(() => k.stopAll())

    // A job under way through the outage: LINE answers its welcome slowly. Its end cannot be
    // recorded in the Redis that restarts empty.
    k.line.failNext({
      method: 'POST',
      path: '/v2/bot/message/reply',
      timeoutMs: 2_000,
      carriedOut: true,
    })
    const early = k.line.users.create()
    expect((await k.line.users.follow(early.userId))?.status).toBe(200)
    await eventually(() =>
      expect(k.line.requestsTo('POST', '/v2/bot/message/reply')).toHaveLength(1),
    )
    await redis.stop()
    // Long enough for every connection to try again a few times.
    await new Promise((r) => setTimeout(r, 2_500))
    const user = k.line.users.create()
    const result = (await k.line.users.follow(user.userId))!
    expect(result.status).toBe(200) // the stand-in gives up after 2 s like LINE
    const webhookEventId = result.body.events[0]!.webhookEventId
    const row = await k.deps.db
      .selectFrom('webhook_event')
      .select('status')
      .where('webhook_event_id', '=', webhookEventId)
      .executeTakeFirstOrThrow()
    expect(row.status).toBe('pending')

    current = await startPrivateRedis(redis.port)
    await eventually(async () => {
      const after = await k.deps.db
        .selectFrom('webhook_event')
        .select('status')
        .where('webhook_event_id', '=', webhookEventId)
        .executeTakeFirstOrThrow()
      expect(after.status).toBe('done')
      expect(k.line.inbox(user.userId)).toHaveLength(1)
    }, 40_000)

    // The outage is said once, naming REDIS_URL, and so is its end: not a line per queue, worker
    // and request at every reconnection attempt (thousands in a ten-minute outage).
    const problems = logs.entries().filter((l) => (l.level as number) >= 40)
    expect(problems).toEqual([
      expect.objectContaining({ level: 50, msg: expect.stringContaining('REDIS_URL') }),
    ])
    expect(String(problems[0]?.msg)).toContain(`127.0.0.1:${redis.port}`)
    expect(logs.entries()).toContainEqual(
      expect.objectContaining({
        level: 30,
        msg: expect.stringContaining('Redis is reachable again'),
      }),
    )
  }, 60_000)

  it('answers 503 when Postgres is unreachable, so LINE knows it was not stored', async () => {
    const line = await startLinePlatform({
      channelSecret: TEST_CHANNEL_SECRET,
      channelAccessToken: TEST_CHANNEL_TOKEN,
    })
    cleanups.push(() => line.close())
    const env = testEnv({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' })
    const logs = logSink()
    const deps = await createDeps(env, {
      queuePrefix: `test-${randomUUID()}`,
      log: createLogger('info', logs.sink),
    })
    cleanups.push(() => closeDeps(deps))
    const mailer = createMailer(deps.env, deps.db, { sandbox: false })
    const app = createApp(deps, { inbox: createInbox(deps), mailer })
    const user = line.users.create()
    const body = JSON.stringify(line.envelope([line.buildEvent('follow', user.userId, {})]))
    const res = await app.request('/webhooks/line', {
      method: 'POST',
      headers: { 'x-line-signature': sign(body), 'content-type': 'application/json' },
      body,
    })
    expect(res.status).toBe(503)
    expect((await errorOf(res)).code).toBe('UNAVAILABLE')

    // A register's scan is told the same, not "internal error": it may try again in a moment.
    const scan = await app.request('/api/pos/scans', {
      method: 'POST',
      headers: { authorization: `Bearer kz_0000000a_${'x'.repeat(32)}` },
      body: JSON.stringify({ barcode: '2900000000001' }),
    })
    expect(scan.status).toBe(503)
    expect(await errorOf(scan)).toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/database/),
    })
    // The operator sees why LINE and the register got 503s: one line, naming DATABASE_URL.
    const problems = logs.entries().filter((l) => (l.level as number) >= 40)
    expect(problems).toEqual([
      expect.objectContaining({
        level: 50,
        msg: expect.stringContaining('Postgres is unreachable at DATABASE_URL'),
      }),
    ])
    expect(JSON.stringify(problems[0])).toContain('ECONNREFUSED')
  })

  it('logs a read-only Postgres (a failover DNS has not caught up with) once, as an outage', async () => {
    const line = await startLinePlatform({
      channelSecret: TEST_CHANNEL_SECRET,
      channelAccessToken: TEST_CHANNEL_TOKEN,
    })
    cleanups.push(() => line.close())
    // Connections are made and taken; every write is refused (25006), as on a standby.
    const readOnly = new URL(TEST_DATABASE_URL)
    readOnly.searchParams.set('options', '-c default_transaction_read_only=on')
    const logs = logSink()
    const deps = await createDeps(testEnv({ DATABASE_URL: readOnly.toString() }), {
      queuePrefix: `test-${randomUUID()}`,
      log: createLogger('info', logs.sink),
    })
    cleanups.push(() => closeDeps(deps))
    const mailer = createMailer(deps.env, deps.db, { sandbox: false })
    const app = createApp(deps, { inbox: createInbox(deps), mailer })
    const post = () => {
      const body = JSON.stringify(
        line.envelope([line.buildEvent('follow', line.users.create().userId, {})]),
      )
      return app.request('/webhooks/line', {
        method: 'POST',
        headers: { 'x-line-signature': sign(body), 'content-type': 'application/json' },
        body,
      })
    }
    for (let i = 0; i < 2; i++) {
      const res = await post()
      expect(res.status).toBe(503)
      expect((await errorOf(res)).code).toBe('UNAVAILABLE')
      // A read between them succeeds: no end of the outage (and no new one at the next write).
      await sql`select 1`.execute(deps.db)
    }
    const entries = logs.entries()
    expect(entries.filter((l) => (l.level as number) >= 40)).toEqual([
      expect.objectContaining({
        level: 50,
        msg: expect.stringContaining('Postgres is unreachable at DATABASE_URL'),
      }),
    ])
    expect(JSON.stringify(entries)).toContain('25006')
    expect(entries.map((l) => l.msg)).not.toContainEqual(expect.stringContaining('reachable again'))
  })

  it('logs a Postgres outage once and its end, not a line per request and job attempt', async () => {
    // Its own database: this Kizuna sweeps.
    const database = await createPrivateDatabase()
    cleanups.push(() => database.drop())
    const target = new URL(database.url)
    const proxy = await startFrozenProxy({ host: target.hostname, port: Number(target.port) })
    cleanups.push(() => proxy.close())
    const viaProxy = new URL(database.url)
    viaProxy.host = `127.0.0.1:${proxy.port}`
    const logs = logSink()
    const k = await startTestKizuna(
      { DATABASE_URL: viaProxy.toString() },
      { log: createLogger('info', logs.sink) },
    )
    cleanups.push(() => k.stopAll())

    proxy.cut()
    for (let i = 0; i < 3; i++) {
      expect((await k.line.users.follow(k.line.users.create().userId))?.status).toBe(503)
    }
    // A job that needs Postgres fails meanwhile, and is retried.
    const jobId = `sweep-${randomUUID()}`
    await k.deps.queues.enqueue('maintenance.sweep', {}, { jobId })
    await eventually(async () => {
      const text = await k.deps.metrics.registry.metrics()
      expect(text).toMatch(/kizuna_jobs_total\{queue="maintenance",outcome="failed"\} [1-9]/)
    })

    proxy.restore()
    const user = k.line.users.create()
    expect((await k.line.users.follow(user.userId))?.status).toBe(200)
    await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
    const entries = logs.entries()
    expect(entries.filter((l) => (l.level as number) >= 50)).toEqual([
      expect.objectContaining({
        level: 50,
        msg: expect.stringContaining('Postgres is unreachable at DATABASE_URL'),
      }),
    ])
    // Only work under way at the cut (the first scheduled sweep, if it ran just then) may log
    // the connection it lost; what the outage failed afterwards logs nothing.
    const warnings = entries.filter((l) => l.level === 40)
    expect(warnings.filter((l) => l.jobId === jobId)).toEqual([])
    expect(warnings.length).toBeLessThanOrEqual(1)
    expect(entries).toContainEqual(
      expect.objectContaining({
        level: 30,
        msg: expect.stringContaining('Postgres is reachable again'),
      }),
    )
  })

  it('answers 503 within seconds when Postgres stops answering, and keeps answering', async () => {
    // Its own database: the event stored before the freeze is never processed here, and on the
    // shared one another test's Kizuna would sweep it up and send it through its own stand-in.
    const database = await createPrivateDatabase()
    cleanups.push(() => database.drop())
    const target = new URL(database.url)
    const proxy = await startFrozenProxy({
      host: target.hostname,
      port: Number(target.port || 5432),
    })
    const viaProxy = new URL(database.url)
    viaProxy.host = `127.0.0.1:${proxy.port}`
    const line = await startLinePlatform({
      channelSecret: TEST_CHANNEL_SECRET,
      channelAccessToken: TEST_CHANNEL_TOKEN,
    })
    cleanups.push(() => line.close())
    const deps = await createDeps(testEnv({ DATABASE_URL: viaProxy.toString() }), {
      queuePrefix: `test-${randomUUID()}`,
    })
    await migrateToLatest(deps.db)
    cleanups.push(() => closeDeps(deps))
    // Runs first: closing the connections ends the queries that would never be answered.
    cleanups.push(() => proxy.close())
    const mailer = createMailer(deps.env, deps.db, { sandbox: false })
    const storeTimeoutMs = 1_000
    const appWith = () => createApp(deps, { inbox: createInbox(deps, { storeTimeoutMs }), mailer })
    const app = appWith()
    const post = (to = app) => {
      const user = line.users.create()
      const body = JSON.stringify(line.envelope([line.buildEvent('follow', user.userId, {})]))
      return to.request('/webhooks/line', {
        method: 'POST',
        headers: { 'x-line-signature': sign(body), 'content-type': 'application/json' },
        body,
      })
    }
    expect((await post()).status).toBe(200)

    proxy.freeze()
    for (let i = 0; i < 2; i++) {
      const res = await post()
      expect(res.status).toBe(503)
      expect((await errorOf(res)).code).toBe('UNAVAILABLE')
    }
    // A request queued behind a stalled insert keeps its own deadline, not the insert's plus
    // its own (which took it past LINE's 2 s): it is answered before a request that came
    // after it to an idle inbox (another app's, same deadline), whose insert starts at once.
    const first = post()
    // Lets the first request's insert start, so the next one queues behind it.
    await new Promise((r) => setTimeout(r, 400))
    const answered: string[] = []
    const noting = async (name: string, response: Response | Promise<Response>) => {
      const res = await response
      answered.push(name)
      return res
    }
    const queued = noting('queued', post())
    await new Promise((r) => setTimeout(r, 200))
    const idle = noting('idle inbox', post(appWith()))
    expect((await queued).status).toBe(503)
    expect((await idle).status).toBe(503)
    expect(answered).toEqual(['queued', 'idle inbox'])
    expect((await first).status).toBe(503)
  })
})

describe('a client gone before its whole webhook body came', () => {
  /** Sends the head of a POST to the webhook and part of its body, then drops the connection. */
  async function abandon(baseUrl: string, head: string, part: string): Promise<void> {
    const { port, hostname: host } = new URL(baseUrl)
    const socket = connect(Number(port), host)
    await once(socket, 'connect')
    socket.write(`POST /webhooks/line HTTP/1.1\r\nHost: ${host}\r\n${head}\r\n${part}`)
    // Let the server start reading the body before the client goes.
    await new Promise((r) => setTimeout(r, 200))
    socket.destroy()
  }

  it('is a client error (400), not an outage: nothing logged as one, no 503 counted', async () => {
    const logs = logSink()
    const k = await startTestKizuna({}, { log: createLogger('info', logs.sink) })
    cleanups.push(() => k.stopAll())
    const answered = async (status: string) => {
      const text = await (await fetch(`${k.baseUrl}/metrics`)).text()
      const labels = `route="/webhooks/line",method="POST",status="${status}"`
      const line = text
        .split('\n')
        .find((l) => l.startsWith(`kizuna_http_request_seconds_count{${labels}}`))
      return Number(line?.split(' ').at(-1) ?? 0)
    }
    const json = 'Content-Type: application/json\r\n'
    const uploads = [
      [`${json}Content-Length: 1000\r\n`, '{"a'],
      [`${json}Transfer-Encoding: chunked\r\n`, '3\r\n{"a\r\n'],
    ] as const
    for (const [i, [head, part]] of uploads.entries()) {
      await abandon(k.baseUrl!, head, part)
      await eventually(async () => expect(await answered('400')).toBe(i + 1))
    }
    expect(await answered('503')).toBe(0)
    expect(logs.lines.join('')).not.toContain('cannot reach a service')
    expect(logs.entries().filter((l) => (l.level as number) >= 50)).toEqual([])
  })
})
