import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { TEST_DATABASE_URL, TEST_REDIS_URL } from './env.ts'
import { sparePort } from './ports.ts'

/** A process a test starts, with its stdout and stderr read together as `output()`. */
export function spawnWithOutput(
  command: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd?: string },
): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d) => {
    output += String(d)
  })
  child.stderr?.on('data', (d) => {
    output += String(d)
  })
  return { child, output: () => output }
}

const startScript = fileURLToPath(new URL('../../src/main/start.ts', import.meta.url))

/** `npm start` (src/main/start.ts) on a spare port, on the test Postgres and Redis, plus `env`. */
export async function spawnKizuna(env: NodeJS.ProcessEnv) {
  const port = await sparePort()
  const spawned = spawnWithOutput(process.execPath, [startScript], {
    env: {
      ...process.env,
      PORT: String(port),
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      ...env,
    },
  })
  return { port, ...spawned }
}
