import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { TEST_DATABASE_URL, TEST_REDIS_URL } from './env.ts'

const run = promisify(execFile)
const kizuna = fileURLToPath(new URL('../../src/cli/kizuna.ts', import.meta.url))

/** Runs `kizuna <args>` as a real process against the test database (in `cwd` if given). */
export async function cli(
  args: string[],
  env: Record<string, string> = {},
  opts: { cwd?: string } = {},
) {
  try {
    const { stdout, stderr } = await run(process.execPath, [kizuna, ...args], {
      ...opts,
      env: {
        ...process.env,
        DATABASE_URL: TEST_DATABASE_URL,
        REDIS_URL: TEST_REDIS_URL,
        LOG_LEVEL: 'silent',
        ...env,
      },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string }
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}
