import { once } from 'node:events'
import { createServer, type Server } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { assertRedisReachable, RedisUnreachable } from '../../src/platform/redis.ts'
import { TEST_REDIS_URL } from '../support/env.ts'
import { testRedisDatabases } from '../support/private-redis.ts'

const servers: Server[] = []
afterAll(() => {
  for (const server of servers) server.close()
})

/**
 * A TCP server that is not Redis: to anything it answers `reply` and hangs up, or hangs up
 * ('hang up'), or says nothing ('silent').
 */
async function notRedis(reply: string | 'hang up' | 'silent'): Promise<string> {
  const server = createServer((socket) => {
    socket.once('data', () => {
      if (reply === 'hang up') socket.destroy()
      else if (reply !== 'silent') socket.end(reply)
    })
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return `redis://127.0.0.1:${address.port}`
}

async function failure(url: string): Promise<string> {
  return (await failed(url)).message
}

function failed(url: string): Promise<Error> {
  return assertRedisReachable(url, 1_000).then(
    () => new Error('resolved'),
    (e: Error) => e,
  )
}

describe('assertRedisReachable', () => {
  it('names REDIS_URL when Redis is not there', async () => {
    await expect(assertRedisReachable('redis://127.0.0.1:1', 500)).rejects.toThrow(/REDIS_URL/)
    // ioredis's reason ends with its own period: never "closed.. Start Redis".
    const error = await assertRedisReachable('redis://127.0.0.1:1', 500).catch((e: Error) => e)
    expect(String(error)).toMatch(/[^.]\. Start Redis or set REDIS_URL/)
  })

  it('refuses a database number the server does not have, naming REDIS_URL and why', async () => {
    // ioredis reported the refused SELECT as an 'error' event only, and went on in database 0.
    const { last, missing } = await testRedisDatabases()
    await expect(assertRedisReachable(missing, 2_000)).rejects.toThrow(
      /^Redis at REDIS_URL \(redis:\/\/[^)]*\/\d+\) refused the connection's set-up: ERR DB index is out of range\. Fix REDIS_URL/,
    )
    await assertRedisReachable(last, 2_000)
  })

  it('says why Redis is unreachable, as the connection failed, never only "Connection is closed"', async () => {
    const plain = new URL(TEST_REDIS_URL)
    // Each with whether it is an outage (RedisUnreachable: no server answers there, which ROLE=web
    // starts through) or a server there that is not Redis.
    const cases: [string, RegExp, boolean][] = [
      ['redis://127.0.0.1:1', /: connect ECONNREFUSED 127\.0\.0\.1:1\. Start Redis/, true],
      [
        'redis://no-such-host.invalid:6379',
        /: getaddrinfo (ENOTFOUND|EAI_AGAIN) no-such-host\.invalid/,
        true,
      ],
      // TLS against a plain Redis: the connection is made, and no TLS answer comes. Not an
      // outage (ROLE=web started degraded on it, for ever): no wait mends REDIS_URL.
      [
        `rediss://${plain.host}`,
        /: connected, but no TLS answer came within 1 s \(a rediss:\/\/ URL wants a server that speaks TLS; plain Redis answers redis:\/\/\)\. Start Redis/,
        false,
      ],
      // A TLS proxy or load balancer that takes the connection while the Redis behind it is
      // down says nothing, to TLS or to a plain PING: an outage (ROLE=web stopped on it).
      [
        (await notRedis('silent')).replace(/^redis:/, 'rediss:'),
        /: connect ETIMEDOUT\. Start Redis/,
        true,
      ],
      // With TLS too, no server there is an outage.
      ['rediss://127.0.0.1:1', /: connect ECONNREFUSED 127\.0\.0\.1:1\. Start Redis/, true],
      // Another service's port (an HTTP server, Postgres that hangs up on what it cannot read).
      [
        await notRedis('HTTP/1.1 400 Bad Request\r\n\r\n'),
        /: the server there does not answer as Redis does \(it sent "H/,
        false,
      ],
      [
        await notRedis('hang up'),
        /: the server there closed the connection without answering \(not a Redis server\?\)/,
        false,
      ],
      // One that takes the connection and says nothing kept start-up waiting for ever.
      [
        await notRedis('silent'),
        /: connected, but no answer came within 1 s \(not a Redis server\?\)/,
        false,
      ],
    ]
    for (const [url, reason, outage] of cases) {
      const error = await failed(url)
      expect(error instanceof RedisUnreachable, url).toBe(outage)
      const message = error.message
      expect(message, url).toMatch(/^Redis is unreachable at REDIS_URL/)
      expect(message, url).toMatch(reason)
      expect(message, url).not.toContain('Connection is closed')
    }
  })

  it('never prints the password of REDIS_URL', async () => {
    const message = await failure('redis://:s3cret-pass@127.0.0.1:1')
    expect(message).toContain(':***@')
    expect(message).not.toContain('s3cret-pass')
  })
})
