import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { formatCardNumber } from '../src/cards/ean13.ts'
import { migrateToLatest } from '../src/main/migrate.ts'
import { createDb } from '../src/platform/db.ts'

/** Drops and re-creates the database named in `url`, then applies every migration. */
export async function freshDatabase(url: string): Promise<void> {
  const admin = new URL(url)
  const name = admin.pathname.slice(1)
  admin.pathname = '/postgres'
  const client = new pg.Client({ connectionString: admin.toString() })
  await client.connect()
  await client.query(`drop database if exists "${name}" with (force)`)
  await client.query(`create database "${name}"`)
  await client.end()
  const db = await createDb({ DATABASE_URL: url, DATA_DIR: '' }, { poolSize: 1 })
  try {
    await migrateToLatest(db)
  } finally {
    await db.destroy()
  }
}

/** A 32-bit integer hash (murmur3 finaliser): deterministic, well spread. */
export function mix(n: number): number {
  let h = n >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0')

/** A unique, random-looking uuid for row `i` of a table (`salt` tells the tables apart). */
export function seedUuid(salt: number, i: number): string {
  const a = mix(i ^ (salt << 28))
  const b = mix(a + salt)
  return `${hex(a, 8)}-${hex(b >>> 16, 4)}-4${hex(b & 0xfff, 3)}-8${hex(salt & 0xfff, 3)}-${hex(i, 12)}`
}

export const customerId = (i: number) => seedUuid(1, i)
const purchaseId = (j: number) => seedUuid(2, j)
export const memberCard = (i: number) => formatCardNumber('29', BigInt(i + 1))

export type SeedSizes = { customers: number; lines: number }

/**
 * Purchase j belongs to customer j % customers and has 1–7 lines (4 on average, so
 * lines / 4 purchases); prices and dates are functions of j, so a customer's stats can be
 * computed without keeping the purchases.
 */
function layout(sizes: SeedSizes) {
  const purchases = Math.max(1, Math.round(sizes.lines / 4))
  const now = Date.now()
  const DAY = 86_400_000
  const linesOf = (j: number) => 1 + ((j * 3) % 7)
  const quantity = (j: number, l: number) => 1 + (mix(j * 8 + l) % 3)
  const unitPrice = (j: number, l: number) => 100 * (1 + (mix(j * 8 + l + 1) % 60))
  const purchasedAt = (j: number) => now - DAY - (mix(j ^ 0x5bd1e995) % (730 * DAY))
  const totalOf = (j: number) => {
    let total = 0
    for (let l = 0; l < linesOf(j); l++) total += quantity(j, l) * unitPrice(j, l)
    return total
  }
  return { purchases, now, DAY, linesOf, quantity, unitPrice, purchasedAt, totalOf }
}

/** Yields COPY text in chunks of about 256 rows. */
export function* chunked(count: number, row: (i: number) => string): Generator<string> {
  let buf = ''
  for (let i = 0; i < count; i++) {
    buf += row(i)
    if ((i & 255) === 255) {
      yield buf
      buf = ''
    }
  }
  if (buf) yield buf
}

export async function copyInto(
  url: string,
  statement: string,
  rows: Iterable<string>,
): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    // The rows are consistent by construction: skip the per-row foreign-key triggers.
    await client.query('set session_replication_role = replica')
    await pipeline(Readable.from(rows), client.query(copyFrom(statement)))
  } finally {
    await client.end()
  }
}

type Rebuild = { table: string; sql: string }

/**
 * Drops the secondary indexes and unique constraints of `tables` that no foreign key relies
 * on, and returns the statements that put them back exactly (faster than upkeep per row).
 */
async function dropIndexes(client: pg.Client, tables: string[]): Promise<Rebuild[]> {
  const { rows } = await client.query<{ table: string; name: string; def: string; con: boolean }>(
    `select i.indrelid::regclass::text as table, i.indexrelid::regclass::text as name,
       coalesce(pg_get_constraintdef(c.oid), pg_get_indexdef(i.indexrelid)) as def,
       c.oid is not null as con
     from pg_index i
     left join pg_constraint c on c.conindid = i.indexrelid and c.contype in ('p', 'u')
     where i.indrelid = any($1::regclass[])
       and not exists (select 1 from pg_constraint f
                       where f.contype = 'f' and f.conindid = i.indexrelid)`,
    [tables],
  )
  const rebuild: Rebuild[] = []
  for (const r of rows) {
    if (r.con) {
      await client.query(`alter table ${r.table} drop constraint ${r.name}`)
      rebuild.push({
        table: r.table,
        sql: `alter table ${r.table} add constraint ${r.name} ${r.def}`,
      })
    } else {
      await client.query(`drop index ${r.name}`)
      rebuild.push({ table: r.table, sql: r.def })
    }
  }
  return rebuild
}

async function runOn(url: string, statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query("set maintenance_work_mem = '512MB'")
    for (const s of statements) await client.query(s)
  } finally {
    await client.end()
  }
}

/**
 * Seeds `customers` customers with a member card each (EAN-13, prefix 29) and `lines`
 * purchase lines over lines / 4 store purchases, all with COPY FROM STDIN; customer stats
 * (points, counts, spend, tier) agree with the purchases. Returns the seconds per phase.
 */
export async function seedPurchases(
  url: string,
  sizes: SeedSizes,
  storeId: string,
): Promise<Record<string, number>> {
  const L = layout(sizes)
  const times: Record<string, number> = {}
  let t = performance.now()
  const lap = (name: string) => {
    const now = performance.now()
    times[name] = Number(((now - t) / 1000).toFixed(1))
    t = now
  }
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  const tables = ['customer', 'identity', 'purchase']
  const rebuild = await dropIndexes(admin, tables)

  const iso = (ms: number) => new Date(ms).toISOString()
  const yearAgo = L.now - 365 * L.DAY
  const customerRow = (i: number) => {
    let count = 0
    let total = 0
    let spend = 0
    let first = Number.POSITIVE_INFINITY
    let last = 0
    for (let j = i; j < L.purchases; j += sizes.customers) {
      const amount = L.totalOf(j)
      const at = L.purchasedAt(j)
      count++
      total += amount
      if (at > yearAgo) spend += amount
      if (at < first) first = at
      if (at > last) last = at
    }
    const tier = spend >= 200_000 ? 'gold' : spend >= 50_000 ? 'silver' : 'regular'
    const dates = count > 0 ? `${iso(first)}\t${iso(last)}` : '\\N\t\\N'
    return `${customerId(i)}\tMember ${i}\t${tier}\t${Math.floor(total / 100)}\t${dates}\t${count}\t${total}\t${spend}\n`
  }
  await Promise.all([
    copyInto(
      url,
      'copy customer (id, display_name, tier, points, first_purchase_at, last_purchase_at, ' +
        'purchase_count, total_spent, spend_12m) from stdin',
      chunked(sizes.customers, customerRow),
    ).then(() =>
      copyInto(
        url,
        'copy identity (customer_id, kind, value) from stdin',
        chunked(sizes.customers, (i) => `${customerId(i)}\tmember_card\t${memberCard(i)}\n`),
      ),
    ),
    copyInto(
      url,
      'copy purchase (id, customer_id, channel, source, external_id, store_id, register_id, ' +
        'purchased_at, total, points_earned, line_skus, line_names, line_quantities, ' +
        'line_unit_prices) from stdin',
      chunked(L.purchases, (j) => {
        const total = L.totalOf(j)
        const skus: string[] = []
        const quantities: number[] = []
        const prices: number[] = []
        for (let l = 0; l < L.linesOf(j); l++) {
          skus.push(`SKU-${mix(j * 8 + l + 2) % 20_000}`)
          quantities.push(L.quantity(j, l))
          prices.push(L.unitPrice(j, l))
        }
        const names = skus.map(() => 'NULL')
        return `${purchaseId(j)}\t${customerId(j % sizes.customers)}\tstore\tS001\tseed-${j}\t${storeId}\t1\t${iso(L.purchasedAt(j))}\t${total}\t${Math.floor(total / 100)}\t{${skus}}\t{${names}}\t{${quantities}}\t{${prices}}\n`
      }),
    ),
  ])
  lap('copy_s')
  // Two sessions rebuild indexes side by side: the big table's alone, the rest together.
  const big = rebuild.filter((r) => r.table === 'purchase').map((r) => r.sql)
  const rest = rebuild.filter((r) => r.table !== 'purchase').map((r) => r.sql)
  await Promise.all([runOn(url, big), runOn(url, rest)])
  lap('indexes_s')
  await admin.query('vacuum (analyze) customer, identity, purchase')
  lap('vacuum_analyze_s')
  // The load's gigabytes of dirty pages are written now, not by the background checkpoint in
  // the middle of the measured run (it took the scans' p99 from ~50 to ~300 ms at 300/s).
  await admin.query('checkpoint')
  lap('checkpoint_s')
  const { rows } = await admin.query<{ lines: string; purchases: string; customers: string }>(
    `select (select sum(cardinality(line_skus)) from purchase) as lines, (select count(*) from purchase) as purchases,
       (select count(*) from customer) as customers`,
  )
  await admin.end()
  lap('count_s')
  times.customers = Number(rows[0]?.customers)
  times.purchases = Number(rows[0]?.purchases)
  times.lines = Number(rows[0]?.lines)
  return times
}

/** LINE user id of seeded friend `i` (`U` + 32 hex). */
export const lineUid = (i: number) => `U${seedUuid(3, i).replaceAll('-', '')}`

/** `count` customers, each a LINE friend with a display name (COPY). */
export async function seedFriends(url: string, count: number): Promise<void> {
  await copyInto(
    url,
    'copy customer (id, display_name) from stdin',
    chunked(count, (i) => `${customerId(i)}\tお客様 ${i}\n`),
  )
  const at = new Date().toISOString()
  // Friends as a running system has them: profile fetched at follow time. (Without it the
  // sweeper backfills 1,000 profiles every 30 s during the benchmark it seeds.)
  await copyInto(
    url,
    'copy line_user (id, customer_id, line_uid, status, status_changed_at, followed_at, ' +
      'display_name, language, profile_fetched_at) from stdin',
    chunked(
      count,
      (i) =>
        `${seedUuid(4, i)}\t${customerId(i)}\t${lineUid(i)}\tfriend\t${at}\t${at}\tお客様 ${i}\tja\t${at}\n`,
    ),
  )
}
