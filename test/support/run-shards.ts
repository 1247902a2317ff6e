// `npm test`: the whole suite as TEST_SHARDS vitest runs side by side (2 by default), each with
// its own test database (global-setup.ts) and BullMQ prefixes (harness.ts), so one run's files
// never see another's rows or jobs. Most of the suite's time is spent waiting (leases, backoffs,
// outages, spawned processes), not computing, so two runs take about half as long even on two
// cores. Arguments (a file, a filter) run one plain vitest run instead. Exits non-zero if any
// run failed.
import { spawn } from 'node:child_process'

const vitest = new URL('../../node_modules/vitest/vitest.mjs', import.meta.url).pathname
const args = process.argv.slice(2)
const shards = args.length > 0 ? 1 : Math.max(1, Number(process.env.TEST_SHARDS ?? 2) || 1)

function run(extra: string[], label: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [vitest, 'run', ...extra], {
      stdio: shards === 1 ? 'inherit' : ['ignore', 'pipe', 'pipe'],
      env: process.env,
    })
    if (shards > 1) {
      for (const [from, to] of [
        [child.stdout, process.stdout],
        [child.stderr, process.stderr],
      ] as const) {
        let rest = ''
        from?.setEncoding('utf8')
        from?.on('data', (chunk: string) => {
          const lines = (rest + chunk).split('\n')
          rest = lines.pop() ?? ''
          for (const line of lines) to.write(`[${label}] ${line}\n`)
        })
        from?.on('end', () => {
          if (rest) to.write(`[${label}] ${rest}\n`)
        })
      }
    }
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)))
  })
}

const codes =
  shards === 1
    ? [await run(args, 'vitest')]
    : await Promise.all(
        Array.from({ length: shards }, (_, i) =>
          run([`--shard=${i + 1}/${shards}`], `${i + 1}/${shards}`),
        ),
      )
const failed = codes.filter((c) => c !== 0).length
if (shards > 1) {
  console.log(failed ? `${failed} of ${shards} test runs failed` : `all ${shards} test runs passed`)
}
process.exit(failed ? 1 : 0)
