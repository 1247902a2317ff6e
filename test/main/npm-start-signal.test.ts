import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env.ts'
import { sparePort } from '../support/ports.ts'
import { spawnWithOutput } from '../support/spawned.ts'
import { eventually } from '../support/wait.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** The processes below `pid` (Linux /proc), children first. */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // pid (comm) state ppid …; comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      parentOf.set(Number(entry), ppid)
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = []
  const queue = [pid]
  while (queue.length > 0) {
    const parent = queue.shift()
    for (const [child, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(child)
        queue.push(child)
      }
    }
  }
  return found
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

// A supervisor (docker stop, a process manager) signals the process it started: `npm run …`.
// npm passes the signal to its script's shell; without `exec` the shell died and left Kizuna
// running, orphaned, never shutting down.
describe.each(['start', 'start:web', 'start:worker'])('npm run %s', (script) => {
  it('passes SIGTERM to Kizuna, which shuts down and exits 0', async () => {
    const port = await sparePort()
    const { child, output } = spawnWithOutput('npm', ['run', '--silent', script], {
      cwd: root,
      env: {
        ...process.env,
        PORT: String(port),
        DATABASE_URL: TEST_DATABASE_URL,
        REDIS_URL: TEST_REDIS_URL,
        QUEUE_PREFIX: `test-${randomUUID()}`,
        // A split role needs LINE credentials; nothing is sent in this test.
        LINE_CHANNEL_SECRET: 'test-secret',
        LINE_CHANNEL_ACCESS_TOKEN: 'test-token',
        LINE_API_BASE_URL: 'http://127.0.0.1:9',
        LINE_DATA_API_BASE_URL: 'http://127.0.0.1:9',
        LOG_LEVEL: 'info',
      },
    })
    let below: number[] = []
    cleanups.push(async () => {
      for (const pid of below) if (alive(pid)) process.kill(pid, 'SIGKILL')
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    await eventually(() => expect(output()).toContain('Kizuna started'), 30_000)
    below = descendants(child.pid ?? 0)
    expect(below.length).toBeGreaterThan(0)

    child.kill('SIGTERM')
    await once(child, 'exit')
    await eventually(() => expect(below.filter(alive)).toEqual([]), 10_000)
    expect(output()).toContain('shutting down')
    expect(output()).toContain('"msg":"stopped"')
  }, 60_000)
})
