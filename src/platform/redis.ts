import { createConnection } from 'node:net'
import { Redis } from 'ioredis'
import { isConnectionError } from './errors.ts'
import type { Logger } from './logger.ts'
import { createOutage, redactPassword, redactUrl } from './outage.ts'
import { PacingUnavailable } from './pacing-unavailable.ts'

export type { Redis }

/**
 * A connection on which Redis has sent nothing for this long while a command waits is closed
 * and replaced (ioredis's socketTimeout), and its commands go again on the new one. After a
 * failover, or a NAT or load balancer dropping the connection without a word, they waited for
 * the kernel to give up (12-15 min: TCP keepalive's probe interval and count are the kernel's,
 * not Node's, and a proxy in between answers them itself), and a worker took no job meanwhile.
 * ioredis's commandTimeout would fail the commands but keep the dead connection. Above BullMQ's
 * longest wait for a job (10 s), which it abandons a second late and reconnects for itself.
 */
const SILENT_AFTER_MS = 15_000

/**
 * Producers fail fast while Redis is away (the webhook must still answer). With `log`, an outage
 * is logged once, and its end (see isRedisOutage); reconnection is automatic.
 */
export function createProducerRedis(
  url: string,
  log?: Logger,
  silentAfterMs = SILENT_AFTER_MS,
): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    socketTimeout: silentAfterMs,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  })
  const outage = log ? watchOutage(redis, url, log) : null
  if (outage) outages.set(redis, outage)
  redis.on('error', (err) => {
    outage?.absorb(err)
  })
  return redis
}

type Watch = { absorb(err: unknown): boolean; include(other: Redis): void }
const outages = new WeakMap<Redis, Watch>()
const RECHECK_MS = 1_000

/**
 * True when `err` means Redis is away: a refused or lost connection, a command that timed out,
 * a write refused by a replica (READONLY, see isConnectionError), or any failure while the
 * connection is down. The outage is logged once, naming REDIS_URL, and
 * its end once (see createOutage), so the caller logs nothing more.
 */
export function isRedisOutage(redis: Redis, err: unknown): boolean {
  return outages.get(redis)?.absorb(err) ?? false
}

function watchOutage(redis: Redis, url: string, log: Logger): Watch {
  const outage = createOutage(log, {
    name: 'Redis',
    envVar: 'REDIS_URL',
    url,
    meanwhile:
      'jobs wait, and webhook events stay stored in Postgres until the sweeper queues them',
  })
  let recheck: NodeJS.Timeout | undefined
  let pinging = false
  let endedAt = 0
  // The worker's connection too: one gone silent is then found and replaced during the outage,
  // not later as an outage of its own.
  const connections = new Set([redis])
  // Back when every connection answers again, whichever of them saw the outage.
  const checkBack = async () => {
    if (pinging || [...connections].some((c) => c.status !== 'ready')) return
    pinging = true
    try {
      await Promise.all([...connections].map((c) => c.ping()))
      // A replica answers PING too: back once it takes writes again (promoted, or reconnected).
      if (await isReplica(redis)) return
      outage.answered()
      endedAt = Date.now()
      clearInterval(recheck)
    } catch {
      // Still away.
    } finally {
      pinging = false
    }
  }
  redis.on('end', () => clearInterval(recheck))
  return {
    include(other) {
      connections.add(other)
      other.on('end', () => connections.delete(other))
    },
    absorb(err: unknown) {
      // A job under way when Redis restarted empty: BullMQ cannot record its end (twice per
      // job); its row in Postgres is the truth, and the sweeper queues what is unfinished. Or
      // one whose end Redis recorded but whose answer a silent connection lost: sent again on
      // the new one, it finds the job's lock gone.
      if (isLostJob(err) && (outage.down || Date.now() - endedAt < LOST_JOBS_MS)) return true
      // A LINE call not made because Redis held its pacing slot unanswered (PacingUnavailable) is
      // an outage even on a connection that still looks ready: one gone silent.
      if (
        redis.status === 'ready' &&
        !isConnectionError(err) &&
        !(err instanceof PacingUnavailable)
      ) {
        return false
      }
      if (!outage.down) {
        outage.failed(err)
        recheck = setInterval(() => void checkBack(), RECHECK_MS)
        recheck.unref()
      }
      return true
    },
  }
}

/** Redis's ROLE; a server that refuses it (a managed one may) is taken for a primary. */
async function isReplica(redis: Redis): Promise<boolean> {
  try {
    const [role] = (await redis.call('role')) as [string]
    return role === 'slave'
  } catch (err) {
    if (isConnectionError(err)) throw err
    return false
  }
}

/** After an outage, how long BullMQ's "Missing key/lock for job" errors are taken as its doing. */
const LOST_JOBS_MS = 60_000

function isLostJob(err: unknown): boolean {
  return err instanceof Error && /^Missing (key|lock) for job/.test(err.message)
}

/**
 * Workers wait for Redis to come back (BullMQ requires maxRetriesPerRequest: null). Their Redis
 * outages are the producer connection's (isRedisOutage(producer, …)): over when both answer.
 */
export function createWorkerRedis(
  url: string,
  producer?: Redis,
  silentAfterMs = SILENT_AFTER_MS,
): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    socketTimeout: silentAfterMs,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  })
  redis.on('error', () => {
    // Workers log their own connection errors through worker.on('error').
  })
  if (producer) outages.get(producer)?.include(redis)
  return redis
}

/**
 * assertRedisReachable found no server answering at REDIS_URL's address: refused, no answer to
 * the connection, or a host name that does not resolve (Docker Compose drops a stopped
 * container's), or a rediss:// URL's server that took the connection and answered neither TLS
 * nor a plain PING (a TLS proxy whose Redis is down). As in a Redis outage, unlike a Redis that
 * refuses the connection's set-up, a server there that is not Redis or a plain Redis at a
 * rediss:// URL, which no wait mends.
 */
export class RedisUnreachable extends Error {
  override name = 'RedisUnreachable'
}

const NO_SERVER_THERE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
])

/**
 * Start-up check: a missing or unreachable Redis stops the process with a clear message (a
 * RedisUnreachable when no server answers there).
 */
export async function assertRedisReachable(url: string, timeoutMs = 3_000): Promise<void> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
  })
  // Errors of the connection's set-up: ioredis reports a refused SELECT (a database number the
  // server does not have) as an 'error' event only, and goes on, ready, in database 0.
  const setUpErrors: Error[] = []
  redis.on('error', (error: Error) => {
    setUpErrors.push(error)
  })
  let refused: Error | undefined
  // connectTimeout ends a connection that is not made; one made to a server that then says
  // nothing (another service's port) would keep start-up waiting for ever.
  let silence: NodeJS.Timeout | undefined
  const silent = new Promise<never>((_, reject) => {
    redis.once('connect', () => {
      silence = setTimeout(() => {
        const seconds = timeoutMs / 1000
        setUpErrors.push(
          new Error(`connected, but no answer came within ${seconds} s (not a Redis server?)`),
        )
        reject(new Error('silent'))
      }, timeoutMs)
    })
  })
  try {
    await Promise.race([
      (async () => {
        // Resolved once ready: after REDIS_URL's AUTH and SELECT.
        await redis.connect()
        refused = setUpErrors[0]
        if (!refused) await redis.ping()
      })(),
      silent,
    ])
  } catch (error) {
    // connect() rejects with "Connection is closed" whatever closed it: the reason is the last
    // error the connection reported (refused, no such host, a timeout, not Redis at all).
    let why = setUpErrors.at(-1) ?? error
    // With TLS, ioredis's "connect ETIMEDOUT" is also a plain Redis, which never answers TLS but
    // answers a plain PING: REDIS_URL to fix, not an outage to wait out.
    if (
      (why as NodeJS.ErrnoException).code === 'ETIMEDOUT' &&
      url.startsWith('rediss:') &&
      (await answersPlainRedis(url, timeoutMs))
    ) {
      why = new Error(
        `connected, but no TLS answer came within ${timeoutMs / 1000} s (a rediss:// URL wants ` +
          'a server that speaks TLS; plain Redis answers redis://)',
      )
    }
    const message =
      `Redis is unreachable at REDIS_URL (${redactUrl(url)}): ${explain(why, url, setUpErrors.length > 0)}. ` +
      'Start Redis or set REDIS_URL to a reachable server.'
    throw NO_SERVER_THERE.has((why as NodeJS.ErrnoException).code ?? '')
      ? new RedisUnreachable(message)
      : new Error(message)
  } finally {
    clearTimeout(silence)
    redis.disconnect()
  }
  if (refused) {
    throw new Error(
      `Redis at REDIS_URL (${redactUrl(url)}) refused the connection's set-up: ` +
        `${reasonOf(refused)}. Fix REDIS_URL (its /database number, its password).`,
    )
  }
}

/**
 * Whether a plain Redis answers at the host and port of `url`: a TCP connection made and a RESP
 * reply (+PONG, -NOAUTH, -ERR …) to a plain PING within `timeoutMs`. A connection alone is not
 * enough: a TLS proxy or a managed Redis's load balancer takes it while the Redis behind it is
 * down, and says nothing to PING (or no RESP: a TLS alert), which is an outage to wait out.
 */
async function answersPlainRedis(url: string, timeoutMs: number): Promise<boolean> {
  const { hostname, port } = new URL(url)
  const socket = createConnection({
    host: hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(port || 6379),
    // Idle time: for the connection, then for the reply to PING.
    timeout: timeoutMs,
  })
  try {
    return await new Promise<boolean>((resolve) => {
      socket.once('connect', () => socket.write('PING\r\n'))
      socket.once('data', (data: Buffer) => resolve(data[0] === 0x2b || data[0] === 0x2d))
      socket.once('timeout', () => resolve(false))
      socket.once('error', () => resolve(false))
      socket.once('close', () => resolve(false))
    })
  } finally {
    socket.destroy()
  }
}

/** An error's message without its final period: ioredis's may end with one ("… closed."). */
function reasonOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\.+$/, '')
}

/** Why a start-up connection failed, in words for REDIS_URL's owner; never its password. */
function explain(error: unknown, url: string, reported: boolean): string {
  let why = reasonOf(error)
  const notResp = /^Unknown RESP type \d+ "(.*?)"/s.exec(why)
  if (notResp) {
    why = `the server there does not answer as Redis does (it sent "${notResp[1]}…": another service's port?)`
  } else if (!reported && /Connection is closed/.test(why)) {
    why = 'the server there closed the connection without answering (not a Redis server?)'
  }
  return redactPassword(why, url)
}
