import { createHmac, randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import pg from 'pg'
import { freshDatabase } from './seed.ts'
import {
  BENCH_DATABASE_URL,
  BENCH_REDIS_URL,
  cpuSecondsOf,
  freePort,
  type LoadResult,
  load,
  startFlags,
  startProcess,
  stopProcess,
} from './support.ts'

const SECRET = randomBytes(16).toString('hex')
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64)
const WARMUP_SECONDS = 2
/**
 * Bare and Kizuna runs alternate, and the result is the median round's ratio: on a shared
 * machine a burst of other load otherwise decides the result of a single pair of runs.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

/** Signed single-event follow webhooks, each with its own webhookEventId and user. */
function webhookRequests() {
  let n = 0
  const runId = randomBytes(4).toString('hex').toUpperCase()
  return () => {
    n += 1
    const id = `01BENCH${runId}${String(n).padStart(11, '0')}`
    const body = JSON.stringify({
      destination: 'U8e742f61d673b39c7fff3cecb7536ef0',
      events: [
        {
          type: 'follow',
          mode: 'active',
          timestamp: Date.now(),
          webhookEventId: id,
          deliveryContext: { isRedelivery: false },
          source: { type: 'user', userId: `U${createHmac('md5', 'u').update(id).digest('hex')}` },
          replyToken: randomBytes(16).toString('hex'),
          follow: { isUnblocked: false },
        },
      ],
    })
    const signature = createHmac('sha256', SECRET).update(body).digest('base64')
    return { body, headers: { 'content-type': 'application/json', 'x-line-signature': signature } }
  }
}

/** Warm-up then the measured run; `accepted` counts every 2xx of both. */
async function measure(
  script: string,
  env: Record<string, string>,
): Promise<LoadResult & { accepted: number; cpuUsPerRequest: number }> {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const child = await startProcess(script, { ...env, PORT: String(port) }, `${base}/healthz`)
  try {
    const next = webhookRequests()
    const warm = await load(`${base}/webhooks/line`, next, {
      seconds: WARMUP_SECONDS,
      connections: CONNECTIONS,
    })
    const cpuBefore = cpuSecondsOf(child.pid)
    const run = await load(`${base}/webhooks/line`, next, {
      seconds: SECONDS,
      connections: CONNECTIONS,
    })
    const cpuUsPerRequest = ((cpuSecondsOf(child.pid) - cpuBefore) * 1e6) / Math.max(1, run.ok)
    return { ...run, accepted: warm.ok + run.ok, cpuUsPerRequest }
  } finally {
    await stopProcess(child)
  }
}

export async function run(): Promise<void> {
  await freshDatabase(BENCH_DATABASE_URL)
  const redis = new Redis(BENCH_REDIS_URL)
  await redis.flushdb()

  const bareScript = fileURLToPath(new URL('./bare-server.ts', import.meta.url))
  const kizunaScript = fileURLToPath(new URL('../src/main/start.ts', import.meta.url))
  const kizunaEnv = {
    ROLE: 'web',
    DATABASE_URL: BENCH_DATABASE_URL,
    REDIS_URL: BENCH_REDIS_URL,
    LINE_CHANNEL_SECRET: SECRET,
    LINE_CHANNEL_ACCESS_TOKEN: 'bench-token',
    // No LINE: start-up's channel check then warns that it could not ask, rather than ask
    // api.line.me with a made-up token (this process makes no other LINE call).
    LINE_API_BASE_URL: 'http://127.0.0.1:9',
    LINE_DATA_API_BASE_URL: 'http://127.0.0.1:9',
    LOG_LEVEL: 'warn',
    // As `npm run start:web` runs it (its V8 heap flags), unless BENCH_NODE_OPTIONS says otherwise.
    NODE_OPTIONS: [
      process.env.BENCH_NODE_OPTIONS ?? startFlags('start:web'),
      process.env.BENCH_CPU_PROF ? `--cpu-prof --cpu-prof-dir=${process.env.BENCH_CPU_PROF}` : '',
    ].join(' '),
  }
  type Measured = Awaited<ReturnType<typeof measure>>
  const rounds: { bare: Measured; kizuna: Measured }[] = []
  for (let round = 1; round <= ROUNDS; round++) {
    const bare = await measure(bareScript, {})
    const kizuna = await measure(kizunaScript, kizunaEnv)
    rounds.push({ bare, kizuna })
    console.log(
      `round ${round}: bare Hono ${bare.rps.toFixed(0)} req/s  p50 ${bare.p50} ms  p99 ${bare.p99} ms` +
        `  ${bare.cpuUsPerRequest.toFixed(0)} µs CPU/req` +
        ` | Kizuna ${kizuna.rps.toFixed(0)} events/s  p50 ${kizuna.p50} ms  p99 ${kizuna.p99} ms` +
        `  ${kizuna.cpuUsPerRequest.toFixed(0)} µs CPU/event` +
        `  (${kizuna.errors} errors)  ratio ${(kizuna.rps / bare.rps).toFixed(3)}`,
    )
  }
  const ordered = [...rounds].sort((a, b) => a.kizuna.rps / a.bare.rps - b.kizuna.rps / b.bare.rps)
  const { bare, kizuna } = ordered[Math.floor(ordered.length / 2)]!
  const accepted = rounds.reduce((sum, r) => sum + r.kizuna.accepted, 0)
  const errors = rounds.reduce((sum, r) => sum + r.kizuna.errors, 0)

  // Nothing accepted is lost: every 2xx is a row, and every row reached the queue.
  const db = new pg.Client({ connectionString: BENCH_DATABASE_URL })
  await db.connect()
  const stored = Number((await db.query('select count(*) as n from webhook_event')).rows[0].n)
  await db.end()
  const jobs = await redis.llen('kizuna:webhook:wait')
  await redis.flushdb()
  redis.disconnect()
  // Requests still in flight when the load stops are stored but not counted as answered.
  console.log(`answered 2xx for ${accepted} events, stored ${stored}, in ${jobs} jobs`)
  if (stored < accepted) throw new Error('an accepted event was not stored')

  const ratio = kizuna.rps / bare.rps
  console.log(
    JSON.stringify({
      bench: 'webhook',
      value: Math.round(kizuna.rps),
      unit: 'events/s',
      baseline: Math.round(bare.rps),
      ratio: Number(ratio.toFixed(3)),
      p50_ms: kizuna.p50,
      p99_ms: kizuna.p99,
      baseline_p99_ms: bare.p99,
      errors,
      accepted,
      rounds: rounds.map((r) => Number((r.kizuna.rps / r.bare.rps).toFixed(3))),
      stored,
    }),
  )
}
