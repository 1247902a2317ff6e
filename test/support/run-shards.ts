// `npm test`: the whole suite as TEST_SHARDS vitest runs side by side (3 by default), each with
// its own test database (global-setup.ts) and BullMQ prefixes (harness.ts), so one run's files
// never see another's rows or jobs. Most of the suite's time is spent waiting (leases, backoffs,
// outages, spawned processes), not computing: on two cores, three runs took 344 s (2026-12-07)
// where two had taken 617-683 s the day before. Arguments (a file, a filter) run one plain vitest run instead. Exits non-zero if any
// run failed.
//
// The files are dealt to the runs by how long each took (test-durations.json, longest first, each
// to the run with the least so far): vitest's own --shard splits by count, and a few files of
// a minute or more left one run 2.5 minutes behind the other. A file not listed counts as the
// median. TEST_DURATIONS_WRITE=1 writes the file anew from this run's timings.
import { spawn } from 'node:child_process'
import { globSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

const root = new URL('../..', import.meta.url).pathname
const vitest = join(root, 'node_modules/vitest/vitest.mjs')
const durationsFile = join(root, 'test/support/test-durations.json')
const args = process.argv.slice(2)
const shards = args.length > 0 ? 1 : Math.max(1, Number(process.env.TEST_SHARDS ?? 3) || 1)

function run(extra: string[], label: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [vitest, 'run', ...extra], {
      cwd: root,
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

/** Seconds each test file took when the durations were last written. */
function knownDurations(): Record<string, number> {
  try {
    return JSON.parse(readFileSync(durationsFile, 'utf8'))
  } catch {
    return {}
  }
}

/** The files dealt to `count` runs, longest first, each to the run with the least time so far. */
function dealFiles(files: string[], durations: Record<string, number>, count: number) {
  const known = Object.values(durations).sort((a, b) => a - b)
  const median = known[Math.floor(known.length / 2)] ?? 1
  const cost = (f: string) => durations[f] ?? median
  const runs = Array.from({ length: count }, () => ({ files: [] as string[], seconds: 0 }))
  for (const file of [...files].sort((a, b) => cost(b) - cost(a) || a.localeCompare(b))) {
    const lightest = runs.reduce((min, r) => (r.seconds < min.seconds ? r : min))
    lightest.files.push(file)
    lightest.seconds += cost(file)
  }
  return runs
}

/** Each file's seconds, read from the JSON reports of the runs. */
function timingsOf(reports: string[]): Record<string, number> {
  const seconds: Record<string, number> = {}
  for (const report of reports) {
    const { testResults } = JSON.parse(readFileSync(report, 'utf8')) as {
      testResults: { name: string; startTime: number; endTime: number }[]
    }
    for (const r of testResults) {
      seconds[relative(root, r.name)] = Math.round((r.endTime - r.startTime) / 100) / 10
    }
  }
  return Object.fromEntries(Object.entries(seconds).sort(([a], [b]) => a.localeCompare(b)))
}

async function runShards(): Promise<number[]> {
  const files = globSync('test/**/*.test.{ts,tsx}', { cwd: root }).sort()
  const durations = knownDurations()
  if (Object.keys(durations).length === 0) {
    console.warn(`no ${relative(root, durationsFile)}: files are dealt by count`)
  }
  // A run dealt no file would get no filter, and run them all.
  const runs = dealFiles(files, durations, shards).filter((r) => r.files.length > 0)
  const reports = mkdtempSync(join(tmpdir(), 'kizuna-test-reports-'))
  try {
    const codes = await Promise.all(
      runs.map((r, i) => {
        const label = `${i + 1}/${runs.length}`
        console.log(`[${label}] ${r.files.length} files, ~${Math.round(r.seconds)} s expected`)
        const report = join(reports, `${i + 1}.json`)
        const reporters = ['--reporter=default', '--reporter=json', `--outputFile.json=${report}`]
        return run([...reporters, ...r.files], label)
      }),
    )
    if (process.env.TEST_DURATIONS_WRITE === '1') {
      const timings = timingsOf(runs.map((_, i) => join(reports, `${i + 1}.json`)))
      writeFileSync(durationsFile, `${JSON.stringify(timings, null, 2)}\n`)
      console.log(
        `wrote ${Object.keys(timings).length} durations to ${relative(root, durationsFile)}`,
      )
    }
    return codes
  } finally {
    rmSync(reports, { recursive: true, force: true })
  }
}

const codes = shards === 1 ? [await run(args, 'vitest')] : await runShards()
const failed = codes.filter((c) => c !== 0).length
if (shards > 1) {
  console.log(
    failed
      ? `${failed} of ${codes.length} test runs failed`
      : `all ${codes.length} test runs passed`,
  )
}
process.exit(failed ? 1 : 0)
