import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import pg from 'pg'
import { createApiKey } from '../src/auth/api-key.service.ts'
import { createDb } from '../src/platform/db.ts'
import { type OpenLoopResult, openLoop } from './open-loop.ts'
import { customerId, freshDatabase, memberCard, seedPurchases } from './seed.ts'
import {
  bucketPercentile,
  freePort,
  histogramBuckets,
  startFlags,
  startProcess,
  stopProcess,
} from './support.ts'

/**
 * `npm run bench -- pos-scan`: seeds BENCH_CUSTOMERS customers and BENCH_LINES purchase
 * lines with COPY, then drives POST /api/pos/scans with a new receipt each at BENCH_RATE/s
 * (open loop) against the real server. Baseline: a bare primary-key lookup of a customer
 * through a pg Pool at the same rate in the same run. BENCH_REUSE=1 skips the seeding and
 * reuses the database from the previous run (for profiling; the numbers then drift).
 */
const DATABASE_URL =
  process.env.BENCH_POS_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/kizuna_bench_pos'
const REDIS_URL = process.env.BENCH_POS_REDIS_URL ?? 'redis://127.0.0.1:6379/13'
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 1_000_000)
const LINES = Number(process.env.BENCH_LINES ?? 10_000_000)
const RATE = Number(process.env.BENCH_RATE ?? 300)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
const WARMUP_SECONDS = 5
const GOAL_P99_MS = 15

/** A random seeded member, uniformly. */
const randomMember = () => Math.floor(Math.random() * CUSTOMERS)

function post(agent: http.Agent, url: URL, body: string, key: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        agent,
        method: 'POST',
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => {
          if (res.statusCode === 200) resolve()
          else reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`))
        })
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

/** Scan bodies: a seeded member's card and a new receipt of 1–3 lines. */
function scanBodies(count: number, runId: string): string[] {
  return Array.from({ length: count }, (_, n) => {
    const lines = Array.from({ length: 1 + (n % 3) }, (_, l) => ({
      sku: `SKU-${Math.floor(Math.random() * 20_000)}`,
      name: `Item ${l + 1}`,
      quantity: 1 + (l % 2),
      unitPrice: 100 * (1 + Math.floor(Math.random() * 50)),
    }))
    return JSON.stringify({
      barcode: memberCard(randomMember()),
      registerId: 'R1',
      receipt: {
        id: `bench-${runId}-${n}`,
        purchasedAt: new Date().toISOString(),
        lines,
        total: lines.reduce((sum, l) => sum + l.quantity * l.unitPrice, 0),
      },
    })
  })
}

function row(name: string, r: OpenLoopResult): string {
  const cells = [r.rate.toFixed(0), r.p50, r.p90, r.p99, r.max].map((v) => String(v).padStart(8))
  return `${name.padEnd(16)}${cells.join('')}   ${r.errors} errors`
}

/** The bench store of an earlier seeded run (BENCH_REUSE=1), or null when there is none. */
async function seededStore(): Promise<string | null> {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  try {
    await client.connect()
    const { rows } = await client.query<{ id: string }>(
      "select id from store where code = 'S001' and exists (select from purchase limit 1)",
    )
    return rows[0]?.id ?? null
  } catch {
    return null // no such database yet, or not migrated
  } finally {
    await client.end().catch(() => {})
  }
}

export async function run(): Promise<void> {
  const started = performance.now()
  let seedTimes: Record<string, number> = {}
  let storeId: string
  const seeded = process.env.BENCH_REUSE === '1' ? await seededStore() : null
  if (seeded) {
    storeId = seeded
  } else {
    if (process.env.BENCH_REUSE === '1') console.log(`nothing to reuse in ${DATABASE_URL}: seeding`)
    await freshDatabase(DATABASE_URL)
    const client = new pg.Client({ connectionString: DATABASE_URL })
    await client.connect()
    storeId = (
      await client.query("insert into store (code, name) values ('S001', 'Bench') returning id")
    ).rows[0].id
    await client.end()
    console.log(`seeding ${CUSTOMERS} customers and ${LINES} purchase lines with COPY …`)
    seedTimes = await seedPurchases(DATABASE_URL, { customers: CUSTOMERS, lines: LINES }, storeId)
    console.log('seeded:', JSON.stringify(seedTimes))
  }
  const seedSeconds = (performance.now() - started) / 1000

  const db = await createDb({ DATABASE_URL, DATA_DIR: '' }, { poolSize: 1 })
  const { key } = await createApiKey(db, { storeId, scopes: ['pos'], label: 'bench' })
  await db.destroy()
  const redis = new Redis(REDIS_URL)
  await redis.flushdb()

  // Baseline: the cheapest query a scan could ever make, at the same rate.
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 20 })
  const lookup = async () => {
    const { rows } = await pool.query(
      'select id, display_name, points from customer where id = $1',
      [customerId(randomMember())],
    )
    if (rows.length !== 1) throw new Error('customer not found')
  }
  await openLoop(RATE, 2, lookup)
  const baseline = await openLoop(RATE, SECONDS, lookup)
  await pool.end()

  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const profileDir = process.env.BENCH_CPU_PROF
  const child = await startProcess(
    fileURLToPath(new URL('../src/main/start.ts', import.meta.url)),
    {
      ROLE: 'web',
      PORT: String(port),
      DATABASE_URL,
      REDIS_URL,
      LINE_CHANNEL_SECRET: 'bench-secret',
      LINE_CHANNEL_ACCESS_TOKEN: 'bench-token',
      // No LINE: start-up's channel check then warns that it could not ask, rather than ask
      // api.line.me with a made-up token (this process makes no other LINE call).
      LINE_API_BASE_URL: 'http://127.0.0.1:9',
      LINE_DATA_API_BASE_URL: 'http://127.0.0.1:9',
      LOG_LEVEL: 'warn',
      // As `npm run start:web` runs it (its V8 heap flags), unless BENCH_NODE_OPTIONS says otherwise.
      NODE_OPTIONS: [
        process.env.BENCH_NODE_OPTIONS ?? startFlags('start:web'),
        profileDir ? `--cpu-prof --cpu-prof-dir=${profileDir}` : '',
      ].join(' '),
    },
    `${base}/healthz`,
  )
  const agent = new http.Agent({ keepAlive: true, maxSockets: 128 })
  const url = new URL('/api/pos/scans', base)
  let scans: OpenLoopResult
  // The web process's own times (request to answer), from its metrics: what the load generator
  // adds on these shared cores shows as the difference.
  const serverTimes = () =>
    histogramBuckets(`${base}/metrics`, 'kizuna_http_request_seconds', {
      route: '/api/pos/scans',
      status: '200',
    })
  let server = { p50: Number.NaN, p99: Number.NaN }
  try {
    const runId = randomBytes(4).toString('hex')
    const warmBodies = scanBodies(RATE * WARMUP_SECONDS, `${runId}w`)
    await openLoop(RATE, WARMUP_SECONDS, (i) => post(agent, url, warmBodies[i] ?? '', key))
    const bodies = scanBodies(Math.round(RATE * SECONDS), runId)
    const before = await serverTimes()
    scans = await openLoop(RATE, SECONDS, (i) => post(agent, url, bodies[i] ?? '', key))
    const after = await serverTimes()
    server = { p50: bucketPercentile(before, after, 50), p99: bucketPercentile(before, after, 99) }
  } finally {
    agent.destroy()
    await stopProcess(child)
    await redis.flushdb()
    redis.disconnect()
  }

  console.log(`\n${CUSTOMERS} customers, ${LINES} purchase lines; ${RATE}/s for ${SECONDS} s`)
  console.log(
    `${''.padEnd(16)}${['rate/s', 'p50', 'p90', 'p99', 'max'].map((h) => h.padStart(8)).join('')}   (ms)`,
  )
  console.log(row('pk lookup', baseline))
  console.log(row('scan + receipt', scans))
  console.log(
    `${'server-side'.padEnd(16)}${''.padStart(8)}${`≤${server.p50}`.padStart(8)}${''.padStart(8)}${`≤${server.p99}`.padStart(8)}   (its own histogram's buckets)`,
  )
  if (scans.firstError) console.log(`first error: ${scans.firstError}`)
  const ratio = scans.p99 / baseline.p99
  console.log(
    `goal p99 ≤ ${GOAL_P99_MS} ms: ${scans.p99 <= GOAL_P99_MS ? 'met' : 'NOT met'}; ` +
      `setup ${seedSeconds.toFixed(0)} s, total ${((performance.now() - started) / 1000).toFixed(0)} s`,
  )
  console.log(
    JSON.stringify({
      bench: 'pos-scan',
      value: scans.p99,
      unit: 'ms',
      baseline: baseline.p99,
      ratio: Number(ratio.toFixed(2)),
      p50_ms: scans.p50,
      p99_ms: scans.p99,
      rate: scans.rate,
      target_rate: RATE,
      errors: scans.errors,
      max_ms: scans.max,
      baseline_p50_ms: baseline.p50,
      server_p50_le_ms: server.p50,
      server_p99_le_ms: server.p99,
      customers: CUSTOMERS,
      lines: LINES,
      seed_s: Number(seedSeconds.toFixed(1)),
      ...(seeded ? { reused_db: true } : {}),
    }),
  )
}
