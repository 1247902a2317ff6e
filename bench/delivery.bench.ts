import { readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import pg from 'pg'
import { renderLineMessage } from '../src/flex/message-template.ts'
import { enqueueDeliveries } from '../src/messaging/delivery.service.ts'
import { createLogger } from '../src/platform/logger.ts'
import { createQueues } from '../src/platform/queues.ts'
import { freshDatabase, lineUid, seedFriends } from './seed.ts'
import {
  BENCH_DATABASE_URL,
  BENCH_REDIS_URL,
  cpuSecondsOf,
  freePort,
  startFlags,
  startProcess,
  stopProcess,
} from './support.ts'

const COUNT = Number(process.env.BENCH_DELIVERIES ?? 100_000)
const LIMIT = Number(process.env.BENCH_PUSH_LIMIT ?? 2_000)
/** Kizuna's default queue prefix (the bench's Redis database is flushed first). */
const PREFIX = 'kizuna'
/**
 * Deliveries to other friends sent before the clock starts: the measured run is a worker that
 * has been running (its code compiled, its connections open), not one starting cold.
 */
const WARM_UP = Number(process.env.BENCH_WARM_UP ?? 2_000)

/**
 * `npm run bench -- delivery`: COUNT personalised Flex deliveries (durable rows, template
 * rendered per person) sent by ONE Kizuna process (ROLE=all, its web side idle) to the LINE
 * stand-in in another process, which enforces LINE's push limit and records arrivals.
 * value = delivered per second from enqueue to the last row marked sent; baseline = the limit.
 */
export async function run(): Promise<void> {
  console.error(`seeding ${COUNT} LINE friends and their deliveries…`)
  await freshDatabase(BENCH_DATABASE_URL)
  await seedFriends(BENCH_DATABASE_URL, COUNT + WARM_UP)
  const usersFile = join(tmpdir(), `kizuna-bench-users-${process.pid}.txt`)
  writeFileSync(usersFile, Array.from({ length: COUNT + WARM_UP }, (_, i) => lineUid(i)).join('\n'))
  const pool = new pg.Pool({ connectionString: BENCH_DATABASE_URL, max: 2 })
  await pool.query(`
    insert into delivery (dedupe_key, kind, category, customer_id, template_id, vars)
    select 'bench:' || c.id, 'campaign', 'marketing', c.id, 'campaign-sample',
      jsonb_build_object(
        'displayName', c.display_name,
        'headline', '冬の感謝セール ' || c.display_name || ' 様 最大30% OFF',
        'body', '会員様限定で12月1日から7日まで。店舗でもオンラインでもご利用いただけます。',
        'imageUrl', 'https://kizuna.example.com/images/campaigns/winter-sale.jpg',
        'url', 'https://kizuna.example.com/campaigns/winter-sale?c=' || c.id,
        'period', '2026年12月1日〜7日 / Dec 1–7')
    from customer c order by c.id`)
  // As scheduleDeliveries does after writing a big batch (ANALYZE_AFTER_ROWS).
  await pool.query('analyze delivery')
  // The seed's dirty pages are written now, not by a checkpoint during the measured run.
  await pool.query('checkpoint')
  const { rows: all } = await pool.query<{ id: string }>('select id from delivery order by id')
  const warmIds = all.slice(0, WARM_UP)
  const ids = all.slice(WARM_UP)

  const redis = new Redis(BENCH_REDIS_URL, { maxRetriesPerRequest: null })
  await redis.flushdb()
  const standinPort = await freePort()
  const standin = await startProcess(
    fileURLToPath(new URL('./line-standin.ts', import.meta.url)),
    {
      STANDIN_PORT: String(standinPort),
      STANDIN_USERS: usersFile,
      STANDIN_SECRET: 'bench-secret',
      STANDIN_TOKEN: 'bench-token',
      STANDIN_LATENCY_MS: process.env.BENCH_LINE_LATENCY_MS ?? '0',
    },
    `http://127.0.0.1:${standinPort}/bench/ready`,
  )
  await warmUp(`http://127.0.0.1:${standinPort}`)
  const port = await freePort()
  const kizuna = await startProcess(
    fileURLToPath(new URL('../src/main/start.ts', import.meta.url)),
    // The V8 heap settings `npm start` runs with (package.json), unless BENCH_NODE_OPTIONS.
    {
      PORT: String(port),
      ROLE: 'all',
      DATABASE_URL: BENCH_DATABASE_URL,
      REDIS_URL: BENCH_REDIS_URL,
      LINE_CHANNEL_SECRET: 'bench-secret',
      LINE_CHANNEL_ACCESS_TOKEN: 'bench-token',
      LINE_API_BASE_URL: `http://127.0.0.1:${standinPort}`,
      LINE_DATA_API_BASE_URL: `http://127.0.0.1:${standinPort}`,
      LINE_PUSH_RATE_PER_SECOND: String(LIMIT),
      PUBLIC_BASE_URL: 'https://kizuna.example.com',
      QUIET_HOURS: '',
      ...(process.env.BENCH_SWEEP_INTERVAL_MS
        ? { SWEEP_INTERVAL_MS: process.env.BENCH_SWEEP_INTERVAL_MS }
        : {}),
      LOG_LEVEL: 'warn',
      NODE_OPTIONS: [
        process.env.BENCH_NODE_OPTIONS ?? startFlags(),
        process.env.BENCH_CPU_PROF ? `--cpu-prof --cpu-prof-dir=${process.env.BENCH_CPU_PROF}` : '',
      ].join(' '),
    },
    `http://127.0.0.1:${port}/healthz`,
  )
  let rssMax = 0
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, rssOf(kizuna.pid))
  }, 100)

  const queues = createQueues(redis, createLogger('warn'), PREFIX)
  const standinBase = `http://127.0.0.1:${standinPort}`
  if (warmIds.length > 0) {
    console.error(`warming the worker up with ${warmIds.length} deliveries…`)
    await enqueueDeliveries(queues, warmIds)
    await waitForAccepted(standinBase, warmIds.length, 120_000)
    await fetch(`${standinBase}/bench/reset`, { method: 'POST' })
  }
  const started = performance.now()
  await enqueueDeliveries(
    queues,
    ids.map((r) => ({ id: r.id })),
  )
  await waitForAccepted(standinBase, COUNT, 600_000)
  const linedUp = performance.now()
  let sent = 0
  for (;;) {
    const { rows } = await pool.query<{ sent: number; unfinished: number }>(
      `select count(*) filter (where status = 'sent')::int - $1 as sent,
         count(*) filter (where status in ('pending', 'sending'))::int as unfinished from delivery`,
      [warmIds.length],
    )
    sent = rows[0]!.sent
    if (rows[0]!.unfinished === 0) break
    if (performance.now() - linedUp > 60_000) throw new Error(`${rows[0]!.unfinished} unfinished`)
    await new Promise((r) => setTimeout(r, 100))
  }
  const seconds = (performance.now() - started) / 1000
  clearInterval(sampler)
  const stats = (await (await fetch(`${standinBase}/bench/stats`)).json()) as {
    pushes: number
    accepted: number
    maxWindow: number
    perSecond: number[]
  }
  console.error(`pushes per second: ${stats.perSecond.join(' ')}`)
  const cpu = { kizuna: cpuSecondsOf(kizuna.pid), standin: cpuSecondsOf(standin.pid) }
  await stopProcess(kizuna)
  await stopProcess(standin)
  await queues.close()
  redis.disconnect()
  await pool.end()

  const value = Math.round(sent / seconds)
  const result = {
    bench: 'delivery',
    value,
    unit: 'deliveries/s',
    baseline: LIMIT,
    ratio: Number((value / LIMIT).toFixed(3)),
    max_window: stats.maxWindow,
    rss_mb: Math.round(rssMax / 1024 / 1024),
    deliveries: COUNT,
    sent,
    push_requests: stats.pushes,
    push_accepted: stats.accepted,
    seconds: Number(seconds.toFixed(1)),
    cpu_seconds: cpu,
  }
  console.error(
    `${sent}/${COUNT} sent in ${result.seconds}s = ${value}/s (limit ${LIMIT}); busiest second ` +
      `${stats.maxWindow} pushes; ${stats.pushes} push requests, ${stats.accepted} accepted; ` +
      `worker rss ≤ ${result.rss_mb} MB; cpu s: kizuna ${cpu.kizuna}, stand-in ${cpu.standin}`,
  )
  console.log(JSON.stringify(result))
}

/**
 * Waits until the stand-in has accepted `count` pushes. Polled from the stand-in (in memory),
 * not Postgres: a count over the table ten times a second would take CPU from the run it
 * measures. The rows are checked once at the end.
 */
async function waitForAccepted(standinBase: string, count: number, timeoutMs: number) {
  const since = performance.now()
  for (;;) {
    await new Promise((r) => setTimeout(r, 100))
    const { accepted } = (await (await fetch(`${standinBase}/bench/accepted`)).json()) as {
      accepted: number
    }
    if (accepted >= count) return
    if (performance.now() - since > timeoutMs) throw new Error(`stuck at ${accepted} accepted`)
  }
}

function rssOf(pid: number | undefined): number {
  if (pid === undefined) return 0
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
    return kb * 1024
  } catch {
    return 0
  }
}

/**
 * The stand-in's first requests run cold (its OpenAPI validator not yet compiled by the JIT) and
 * would pile up, then arrive in a bunch: warm it with message validations, which are not pushes.
 */
async function warmUp(base: string): Promise<void> {
  const sample = JSON.parse(
    readFileSync(new URL('../flex-templates/campaign-sample.sample.json', import.meta.url), 'utf8'),
  ) as Record<string, unknown>
  const body = JSON.stringify({ messages: [renderLineMessage('campaign-sample', sample)] })
  let left = 1_500
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (left-- > 0) {
        const res = await fetch(`${base}/v2/bot/message/validate/push`, {
          method: 'POST',
          headers: { authorization: 'Bearer bench-token', 'content-type': 'application/json' },
          body,
        })
        await res.arrayBuffer()
      }
    }),
  )
}
