import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { TEST_DATABASE_URL, TEST_REDIS_URL } from './env.ts'

const run = promisify(execFile)
const kizuna = fileURLToPath(new URL('../../src/cli/kizuna.ts', import.meta.url))

/**
 * Runs `kizuna <args>` as a real process against the test database (in `cwd` if given); with
 * `timeoutMs`, one still running then is killed (its code is then null). An `env` value left
 * undefined unsets that variable; `script` runs another copy's src/cli/kizuna.ts.
 */
export async function cli(
  args: string[],
  env: Record<string, string | undefined> = {},
  opts: { cwd?: string; timeoutMs?: number; script?: string } = {},
) {
  try {
    const { stdout, stderr } = await run(process.execPath, [opts.script ?? kizuna, ...args], {
      cwd: opts.cwd,
      timeout: opts.timeoutMs,
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
    const e = error as { code?: number | null; killed?: boolean; stdout?: string; stderr?: string }
    const code = e.killed ? null : (e.code ?? 1)
    return { code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}
