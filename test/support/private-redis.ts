import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import { TEST_REDIS_URL } from './env.ts'
import { sparePort } from './ports.ts'

/** A throw-away redis-server on a spare port, which a test may stop and start again. */
export async function startPrivateRedis(port?: number) {
  const chosen = port ?? (await sparePort())
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(chosen), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  )
  const probe = new Redis(chosen, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null })
  probe.on('error', () => {})
  for (let i = 0; i < 100; i++) {
    try {
      await probe.connect()
      await probe.ping()
      break
    } catch {
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  probe.disconnect()
  return {
    port: chosen,
    url: `redis://127.0.0.1:${chosen}`,
    async stop() {
      // Gone already (a SIGKILL leaves exitCode null): 'exit' will not come again.
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGKILL')
      await once(child, 'exit')
    },
  }
}

/**
 * TEST_REDIS_URL naming the test Redis's last database (`last`), and the one after it, which the
 * server does not have (`missing`): databases are numbered from 0.
 */
export async function testRedisDatabases(): Promise<{ last: string; missing: string }> {
  const redis = new Redis(TEST_REDIS_URL)
  const [, count] = (await redis.config('GET', 'databases')) as [string, string]
  redis.disconnect()
  const numbered = (n: number) => {
    const url = new URL(TEST_REDIS_URL)
    url.pathname = `/${n}`
    return url.toString()
  }
  return { last: numbered(Number(count) - 1), missing: numbered(Number(count)) }
}
