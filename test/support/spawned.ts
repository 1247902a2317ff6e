import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { startLinePlatform } from '../../src/sandbox/platform.ts'
import { TEST_DATABASE_URL, TEST_REDIS_URL } from './env.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN } from './harness.ts'
import { sparePort } from './ports.ts'
import { eventually } from './wait.ts'

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

/**
 * `npm start` (ROLE=all) against a LINE stand-in of its own, whose credentials it takes for
 * LINE's (no sandbox), plus `env`; started and serving. `cleanups` closes both.
 */
export async function spawnKizunaOnLine(
  cleanups: (() => Promise<void>)[],
  env: NodeJS.ProcessEnv = {},
) {
  const line = await startLinePlatform({
    channelSecret: TEST_CHANNEL_SECRET,
    channelAccessToken: TEST_CHANNEL_TOKEN,
  })
  cleanups.push(() => line.close())
  const { port, child, output } = await spawnKizuna({
    LINE_CHANNEL_SECRET: TEST_CHANNEL_SECRET,
    LINE_CHANNEL_ACCESS_TOKEN: TEST_CHANNEL_TOKEN,
    LINE_API_BASE_URL: line.apiBaseUrl,
    LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
    LOG_LEVEL: 'info',
    ...env,
  })
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  await eventually(() => expect(output()).toContain('Kizuna started'), 30_000)
  return { line, port, child, output }
}

/** The messages of the lines a spawned Kizuna logged at warn level (pino's 40). */
export function warningsIn(output: string): string[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level?: number; msg?: string })
    .filter((entry) => entry.level === 40)
    .map((entry) => entry.msg ?? '')
}
