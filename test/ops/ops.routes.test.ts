import { once } from 'node:events'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createOpsApp } from '../../src/ops/ops.app.ts'
import { createDb, type DB } from '../../src/platform/db.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { createMetrics } from '../../src/platform/metrics.ts'
import { createProducerRedis } from '../../src/platform/redis.ts'
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env.ts'
import { startFrozenProxy } from '../support/frozen-proxy.ts'
import { errorOf, startTestKizuna, type TestKizuna, testEnv } from '../support/harness.ts'
import { logSink } from '../support/log-sink.ts'
import { startPrivateRedis } from '../support/private-redis.ts'
import { eventually } from '../support/wait.ts'

let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k.stopAll()
})

describe('operations endpoints', () => {
  it('GET /healthz and /readyz report the process and its Postgres and Redis', async () => {
    const health = await fetch(`${k.baseUrl}/healthz`)
    expect(health.status).toBe(200)
    const ready = await fetch(`${k.baseUrl}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready', postgres: 'ok', redis: 'ok' })
  })

  it('GET /metrics counts webhook events, jobs and LINE calls', async () => {
    const user = k.line.users.create()
    await k.line.users.follow(user.userId)
    await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
    await eventually(async () => {
      const text = await (await fetch(`${k.baseUrl}/metrics`)).text()
      expect(text).toMatch(/kizuna_webhook_events_total\{type="follow",outcome="received"\} [1-9]/)
      expect(text).toMatch(/kizuna_webhook_events_total\{type="follow",outcome="handled"\} [1-9]/)
      expect(text).toMatch(/kizuna_jobs_total\{queue="webhook",outcome="completed"\} [1-9]/)
      expect(text).toMatch(/kizuna_line_calls_total\{endpoint="reply",status="2xx"\} [1-9]/)
      expect(text).toMatch(/kizuna_line_calls_total\{endpoint="profile",status="2xx"\} [1-9]/)
    })
  })

  it('GET /metrics times requests by route template, method and status', async () => {
    const count = async (labels: string) => {
      const text = await (await fetch(`${k.baseUrl}/metrics`)).text()
      const line = text
        .split('\n')
        .find((l) => l.startsWith(`kizuna_http_request_seconds_count{${labels}}`))
      return Number(line?.split(' ').at(-1) ?? 0)
    }
    const healthz = 'route="/healthz",method="GET",status="200"'
    const card = 'route="/cards/:token/barcode.png",method="GET",status="404"'
    const [healthBefore, cardBefore] = [await count(healthz), await count(card)]
    await fetch(`${k.baseUrl}/healthz`)
    await fetch(`${k.baseUrl}/healthz`)
    // A path with a token in it is counted under its template, never the token.
    expect((await fetch(`${k.baseUrl}/cards/not-a-token/barcode.png`)).status).toBe(404)
    expect(await count(healthz)).toBe(healthBefore + 2)
    expect(await count(card)).toBe(cardBefore + 1)
    expect(await (await fetch(`${k.baseUrl}/metrics`)).text()).not.toContain('not-a-token')
  })

  it('answers unknown routes with the one error shape', async () => {
    const res = await fetch(`${k.baseUrl}/nope`)
    expect(res.status).toBe(404)
    const error = await errorOf(res)
    expect(error.code).toBe('NOT_FOUND')
    expect(error.requestId).toBe(res.headers.get('x-request-id'))
  })

  it("gives every request an id of its own, never the client's X-Request-Id", async () => {
    const answers = await Promise.all(
      [1, 2].map(() => fetch(`${k.baseUrl}/nope`, { headers: { 'x-request-id': 'evil' } })),
    )
    const ids = []
    for (const res of answers) {
      const error = await errorOf(res)
      expect(error.requestId).toBe(res.headers.get('x-request-id'))
      ids.push(error.requestId)
    }
    expect(ids).not.toContain('evil')
    expect(new Set(ids).size).toBe(2)
  })
})

describe('GET /readyz while Redis is down', () => {
  it('keeps a web process ready (its webhook still stores events) and says Redis is not connected; a worker is not ready', async () => {
    const redis = await startPrivateRedis()
    let current = redis
    const web = await startTestKizuna({ ROLE: 'web', REDIS_URL: redis.url })
    const worker = await startTestKizuna({ ROLE: 'worker', REDIS_URL: redis.url })
    try {
      await redis.stop()
      await eventually(async () => {
        const res = await fetch(`${web.baseUrl}/readyz`)
        // A load balancer taking the web process out would answer LINE's webhooks itself, with
        // an error: with redelivery off, those events would be lost.
        expect(res.status).toBe(200)
        expect(await res.json()).toEqual({
          status: 'degraded',
          postgres: 'ok',
          redis: 'unreachable',
        })
        const workerReady = await fetch(`${worker.baseUrl}/readyz`)
        expect(workerReady.status).toBe(503)
        expect(await workerReady.json()).toMatchObject({ redis: 'unreachable' })
      })
    } finally {
      current = await startPrivateRedis(redis.port)
      await worker.stopAll()
      await web.stopAll()
      await current.stop()
    }
  })
})

/**
 * The ops app of a worker with these URLs (real clients, which may not connect), on a pool of
 * `poolSize`, or on `db` when given.
 */
async function opsWith(
  urls: { DATABASE_URL: string; REDIS_URL: string },
  opts: { poolSize?: number; db?: Kysely<DB> } = {},
) {
  const logs = logSink()
  const log = createLogger('info', logs.sink)
  const env = testEnv({ ROLE: 'worker', ...urls })
  const db = opts.db ?? (await createDb(env, { poolSize: opts.poolSize ?? 1, log }))
  const redis = createProducerRedis(env.REDIS_URL, log)
  const app = createOpsApp({ db, redis, metrics: createMetrics(), log, env })
  return {
    db,
    logs,
    redisReady: async () => {
      if (redis.status !== 'ready') await once(redis, 'ready')
    },
    readyz: async () => {
      const res = await app.request('/readyz')
      return { status: res.status, text: await res.text() }
    },
    close: async () => {
      redis.disconnect()
      await db.destroy()
    },
  }
}

describe('GET /readyz with a wrong DATABASE_URL or REDIS_URL', () => {
  it('answers in fixed words, never the role or host names the errors quote, and logs the cause once', async () => {
    const ops = await opsWith({
      DATABASE_URL: 'postgres://nosuchrole@127.0.0.1:5432/kizuna_nosuchdb',
      REDIS_URL: 'redis://redis-host.invalid:6379',
    })
    try {
      const first = await ops.readyz()
      const second = await ops.readyz()
      for (const answer of [first, second]) {
        expect(answer.status).toBe(503)
        expect(JSON.parse(answer.text)).toEqual({
          status: 'unavailable',
          postgres: 'failed',
          redis: 'unreachable',
        })
      }
      // The cause is for the operator's log, once per failure, not one line per probe.
      const readiness = ops.logs.entries().filter((l) => /^readiness/.test(String(l.msg)))
      expect(readiness.map((l) => l.msg).sort()).toEqual([
        'readiness: postgres failed',
        'readiness: redis unreachable',
      ])
      expect(ops.logs.lines.join('')).toContain('nosuchrole')
    } finally {
      await ops.close()
    }
  })

  it('is not ready on a Postgres that accepts no writes (a pool left on a standby or a read-only server), in fixed words, logged once', async () => {
    // Connections that cannot write, as to a failed-over primary now a standby: `select 1` works.
    const readOnly = new URL(TEST_DATABASE_URL)
    readOnly.searchParams.set('options', '-c default_transaction_read_only=on')
    const ops = await opsWith({ DATABASE_URL: readOnly.toString(), REDIS_URL: TEST_REDIS_URL })
    const writable = await opsWith({ DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: TEST_REDIS_URL })
    try {
      await Promise.all([ops.redisReady(), writable.redisReady()])
      for (const answer of [await ops.readyz(), await ops.readyz()]) {
        expect(answer.status).toBe(503)
        expect(JSON.parse(answer.text)).toEqual({
          status: 'unavailable',
          postgres: 'failed',
          redis: 'ok',
        })
      }
      const readiness = ops.logs.entries().filter((l) => /^readiness/.test(String(l.msg)))
      expect(readiness.map((l) => l.msg)).toEqual(['readiness: postgres failed'])
      expect(ops.logs.lines.join('')).toMatch(/read-only/)
      const normal = await writable.readyz()
      expect(normal.status).toBe(200)
      expect(JSON.parse(normal.text)).toEqual({ status: 'ready', postgres: 'ok', redis: 'ok' })
    } finally {
      await ops.close()
      await writable.close()
    }
  })

  it('says unreachable for a Postgres host that does not resolve, without naming it', async () => {
    const ops = await opsWith({
      DATABASE_URL: 'postgres://kizuna@db-host.invalid:5432/kizuna',
      REDIS_URL: TEST_REDIS_URL,
    })
    try {
      const answer = await ops.readyz()
      expect(answer.status).toBe(503)
      expect(answer.text).not.toContain('db-host')
      expect(JSON.parse(answer.text)).toMatchObject({ postgres: 'unreachable' })
    } finally {
      await ops.close()
    }
  })
})

describe('GET /readyz under load', () => {
  it('answers many probes at once from one check of Postgres and Redis', async () => {
    // A pool of the test's own, to count the connections the checks take from it.
    const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 5 })
    let taken = 0
    pool.on('acquire', () => taken++)
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
    const redisServer = await startPrivateRedis()
    const urls = { DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: redisServer.url }
    const ops = await opsWith(urls, { db })
    const counter = createProducerRedis(redisServer.url)
    try {
      await ops.redisReady()
      const pings = async () => {
        const stats = await counter.info('commandstats')
        return Number(/cmdstat_ping:calls=(\d+)/.exec(stats)?.[1] ?? 0)
      }
      const pingsBefore = await pings()
      const answers = await Promise.all(Array.from({ length: 100 }, () => ops.readyz()))
      for (const answer of answers) {
        expect(answer.status).toBe(200)
        expect(JSON.parse(answer.text)).toEqual({ status: 'ready', postgres: 'ok', redis: 'ok' })
      }
      expect(taken).toBe(1)
      expect((await pings()) - pingsBefore).toBe(1)
    } finally {
      counter.disconnect()
      await ops.close()
      await redisServer.stop()
    }
  })

  it('stays ready while every connection of the pool is at work: waiting for one is no outage', async () => {
    const urls = { DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: TEST_REDIS_URL }
    const ops = await opsWith(urls, { poolSize: 2 })
    let release = () => {}
    const held = new Promise<void>((r) => {
      release = r
    })
    const holding: Promise<unknown>[] = []
    try {
      await ops.redisReady()
      // Both connections taken, and kept until the probe has answered (a long report, a burst).
      let working = 0
      for (let i = 0; i < 2; i++) {
        holding.push(
          ops.db.connection().execute(async (conn) => {
            await sql`select 1`.execute(conn)
            working++
            await held
          }),
        )
      }
      await eventually(() => expect(working).toBe(2))
      const answer = await ops.readyz()
      expect(answer.status).toBe(200)
      expect(JSON.parse(answer.text)).toEqual({ status: 'ready', postgres: 'busy', redis: 'ok' })
    } finally {
      release()
      await Promise.all(holding)
      await ops.close()
    }
  })

  it('still says timeout when the connection it waits for is one Postgres does not answer', async () => {
    const target = new URL(TEST_DATABASE_URL)
    const proxy = await startFrozenProxy({ host: target.hostname, port: Number(target.port) })
    proxy.freeze()
    const frozen = new URL(TEST_DATABASE_URL)
    frozen.port = String(proxy.port)
    const ops = await opsWith({ DATABASE_URL: frozen.toString(), REDIS_URL: TEST_REDIS_URL })
    try {
      await ops.redisReady()
      const answer = await ops.readyz()
      expect(answer.status).toBe(503)
      expect(JSON.parse(answer.text)).toMatchObject({ postgres: 'timeout' })
    } finally {
      await ops.close()
      await proxy.close()
    }
  })
})
