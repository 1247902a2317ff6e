import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { freshDatabase, mix } from './seed.ts'

/**
 * `npm run bench -- import`: BENCH_IMPORT_LINES (1M) order lines, orders of 1–5 lines, through
 * `kizuna import orders FILE` on a fresh database, against `psql \copy` of the same file into a
 * staging table of the same columns, in the same run. Goal: at most 3× the \copy time.
 * \copy and import alternate for BENCH_ROUNDS rounds (3), each on a fresh database, and the
 * result is the median round's ratio: the same run's time swings by a third on this shared VM.
 */
const DATABASE_URL =
  process.env.BENCH_IMPORT_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/kizuna_bench_import'
const LINES = Number(process.env.BENCH_IMPORT_LINES ?? 1_000_000)
const GOAL_RATIO = 3
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const COLUMNS =
  'source,order_id,customer_external_id,customer_email,ordered_at,sku,name,quantity,unit_price,total'

/** Writes the CSV; returns the number of orders. */
export async function writeCsv(file: string, lines: number): Promise<number> {
  const out = createWriteStream(file)
  out.write(`${COLUMNS}\n`)
  const base = Date.parse('2026-01-01T00:00:00+09:00')
  let written = 0
  let order = 0
  let buf = ''
  while (written < lines) {
    const count = Math.min(1 + (mix(order) % 5), lines - written)
    const prices = Array.from({ length: count }, (_, l) => 100 * (1 + (mix(order * 8 + l) % 80)))
    const quantities = Array.from({ length: count }, (_, l) => 1 + (mix(order * 8 + l + 4) % 3))
    const total = prices.reduce((sum, p, l) => sum + p * (quantities[l] ?? 1), 0)
    const customer = mix(order ^ 0x2545f491) % 200_000
    const at = new Date(base + (mix(order + 7) % 300) * 86_400_000).toISOString()
    for (let l = 0; l < count; l++) {
      buf +=
        `shop,ORD-${order},C${customer},c${customer}@example.com,${at},SKU-${mix(order * 8 + l + 2) % 20_000},` +
        `"Item, size ${l + 1}",${quantities[l]},${prices[l]},${total}\n`
    }
    written += count
    order++
    if (buf.length > 1 << 16) {
      if (!out.write(buf)) await once(out, 'drain')
      buf = ''
    }
  }
  out.end(buf)
  await once(out, 'finish')
  return order
}

/** Runs a command; resolves with its wall-clock seconds, rejects on a non-zero exit. */
async function timed(cmd: string, args: string[], env: Record<string, string>): Promise<number> {
  const started = performance.now()
  const child = spawn(cmd, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const [code] = await once(child, 'exit')
  if (code !== 0) throw new Error(`${cmd} exited with ${code}`)
  return (performance.now() - started) / 1000
}

async function counts(): Promise<{ purchases: number; lines: number; staged: number }> {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  const { rows } = await client.query(
    `select (select count(*) from purchase) as purchases,
       (select sum(cardinality(line_skus)) from purchase) as lines,
       (select count(*) from order_csv_staging) as staged`,
  )
  await client.end()
  const r = rows[0]
  return { purchases: Number(r.purchases), lines: Number(r.lines), staged: Number(r.staged) }
}

/** One round on a fresh database: \\copy into a staging table, then the import; checks the rows. */
async function measureRound(
  file: string,
  orders: number,
): Promise<{ copySeconds: number; importSeconds: number }> {
  await freshDatabase(DATABASE_URL)
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  await client.query(
    `create table order_csv_staging (source text, order_id text, customer_external_id text,
       customer_email text, ordered_at timestamptz, sku text, name text, quantity integer,
       unit_price integer, total integer)`,
  )
  // Each round starts from the same place: nothing of the last round's WAL left to write.
  await client.query('checkpoint')
  await client.end()

  const copySeconds = await timed(
    'psql',
    [
      DATABASE_URL,
      '-v',
      'ON_ERROR_STOP=1',
      '-qc',
      `\\copy order_csv_staging (${COLUMNS}) from '${file}' with (format csv, header)`,
    ],
    {},
  )
  const kizuna = fileURLToPath(new URL('../src/cli/kizuna.ts', import.meta.url))
  const importSeconds = await timed(process.execPath, [kizuna, 'import', 'orders', file], {
    DATABASE_URL,
    LOG_LEVEL: 'warn',
  })
  const stored = await counts()
  if (stored.purchases !== orders || stored.lines !== LINES || stored.staged !== LINES) {
    throw new Error(`rows missing: ${JSON.stringify(stored)} for ${orders} orders, ${LINES} lines`)
  }
  return { copySeconds, importSeconds }
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kizuna-import-bench-'))
  try {
    const file = join(dir, 'orders.csv')
    const t = performance.now()
    const orders = await writeCsv(file, LINES)
    console.log(
      `wrote ${LINES} lines in ${orders} orders (${((performance.now() - t) / 1000).toFixed(1)} s)`,
    )

    const rounds: { copySeconds: number; importSeconds: number }[] = []
    for (let round = 1; round <= ROUNDS; round++) {
      const measured = await measureRound(file, orders)
      rounds.push(measured)
      console.log(
        `round ${round}: psql \\copy ${measured.copySeconds.toFixed(2)} s | kizuna import orders ` +
          `${measured.importSeconds.toFixed(2)} s | ratio ` +
          (measured.importSeconds / measured.copySeconds).toFixed(2),
      )
    }
    const ratioOf = (r: (typeof rounds)[number]) => r.importSeconds / r.copySeconds
    const ordered = [...rounds].sort((a, b) => ratioOf(a) - ratioOf(b))
    const median = ordered[Math.floor(ordered.length / 2)]
    if (!median) throw new Error('BENCH_ROUNDS must be at least 1')
    const { copySeconds, importSeconds } = median
    const ratio = ratioOf(median)
    console.log(
      `median ratio ${ratio.toFixed(2)} (goal ≤ ${GOAL_RATIO}): ${ratio <= GOAL_RATIO ? 'met' : 'NOT met'}`,
    )
    console.log(
      JSON.stringify({
        bench: 'import',
        value: Number(importSeconds.toFixed(2)),
        unit: 's',
        baseline: Number(copySeconds.toFixed(2)),
        ratio: Number(ratio.toFixed(2)),
        rounds: rounds.map((r) => Number(ratioOf(r).toFixed(2))),
        lines: LINES,
        orders,
        lines_per_s: Math.round(LINES / importSeconds),
      }),
    )
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
