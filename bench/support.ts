import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import autocannon from 'autocannon'

export const BENCH_DATABASE_URL =
  process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/kizuna_bench'
export const BENCH_REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/15'

export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  if (!address || typeof address === 'string') throw new Error('no port')
  return address.port
}

/** Starts `node <script>` with env and waits until GET <url> answers 200. */
export async function startProcess(
  script: string,
  env: Record<string, string>,
  readyUrl: string,
): Promise<ChildProcess> {
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${script} exited with ${child.exitCode}`)
    try {
      const res = await fetch(readyUrl)
      if (res.ok) return child
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  child.kill('SIGKILL')
  throw new Error(`${script} did not become ready`)
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  child.kill('SIGTERM')
  await once(child, 'exit')
}

export type LoadResult = { rps: number; p50: number; p99: number; ok: number; errors: number }

/** Sends pre-built requests round-robin for `seconds` with `connections` keep-alive sockets. */
export async function load(
  url: string,
  next: () => { body: string; headers: Record<string, string> },
  opts: { seconds: number; connections: number },
): Promise<LoadResult> {
  const result = await autocannon({
    url,
    method: 'POST',
    connections: opts.connections,
    duration: opts.seconds,
    requests: [
      {
        setupRequest: (req) => {
          const { body, headers } = next()
          return { ...req, method: 'POST', body, headers: { ...req.headers, ...headers } }
        },
      },
    ],
  })
  const ok = result['2xx']
  return {
    rps: ok / opts.seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok,
    errors: result.non2xx + result.errors + result.timeouts,
  }
}

/** The node flags of `npm start`, or of `npm run start:web` / `start:worker` (package.json). */
export function startFlags(script: 'start' | 'start:web' | 'start:worker' = 'start'): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    scripts: Record<string, string>
  }
  const flags = /^(?:ROLE=\w+ )?(?:exec )?node (.*) src\/main\/start\.ts$/.exec(
    pkg.scripts[script] ?? '',
  )?.[1]
  if (flags === undefined)
    throw new Error(`package.json has no "${script}" script to take flags from`)
  return flags
}

/** User + system CPU seconds a process has used (Linux /proc). */
export function cpuSecondsOf(pid: number | undefined): number {
  if (pid === undefined) return 0
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return Number(((Number(fields[11]) + Number(fields[12])) / 100).toFixed(1))
  } catch {
    return 0
  }
}

/** One histogram series of a process's GET /metrics: bucket upper bound (s) → cumulative count. */
export async function histogramBuckets(
  metricsUrl: string,
  name: string,
  labels: Record<string, string>,
): Promise<Map<number, number>> {
  const text = await (await fetch(metricsUrl)).text()
  const buckets = new Map<number, number>()
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`)) continue
    const [series, value] = [
      line.slice(0, line.lastIndexOf(' ')),
      line.slice(line.lastIndexOf(' ') + 1),
    ]
    const found = Object.fromEntries(
      [...series.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']),
    )
    if (Object.entries(labels).some(([k, v]) => found[k] !== v)) continue
    buckets.set(found.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(found.le), Number(value))
  }
  return buckets
}

/**
 * The upper bound (ms) of the bucket holding the p-th percentile of what was observed between
 * two snapshots of the same histogram: server-side latency at the histogram's resolution.
 */
export function bucketPercentile(
  before: Map<number, number>,
  after: Map<number, number>,
  p: number,
): number {
  const bounds = [...after.keys()].sort((a, b) => a - b)
  const total =
    (after.get(Number.POSITIVE_INFINITY) ?? 0) - (before.get(Number.POSITIVE_INFINITY) ?? 0)
  if (total <= 0) return Number.NaN
  for (const le of bounds) {
    if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= (p / 100) * total) return le * 1000
  }
  return Number.POSITIVE_INFINITY
}
