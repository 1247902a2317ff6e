import type { Env } from '../../config/env.ts'
import {
  type Order,
  type OrderCsvRow,
  orderCsvRowSchema,
  orderSchema,
} from '../../orders/order.schemas.ts'
import { recordOrderBatch } from '../../orders/order.service.ts'
import { csvFieldOf, orderFromCsvRows } from '../../orders/order-csv.ts'
import type { Database } from '../../platform/db.ts'
import { checkInput } from '../../platform/input.ts'
import { UsageError } from '../with-db.ts'
import { reportBadRow, startProgress, summary } from './progress.ts'
import { formatOf, openRecords, type SourceRecord } from './read-records.ts'

const BATCH = 5000

type Group = {
  source: string | undefined
  orderId: string | undefined
  rows: OrderCsvRow[]
  lines: number[]
  bad: boolean
}

const ORDER_COLUMNS = new Set<string>(orderCsvRowSchema.keyof().options)

/**
 * The header, checked once for the whole file (its rows are strings by construction, and are
 * checked as orders): an unknown column, or no order_id, refuses the file before anything is
 * written. True once there was a header to check.
 */
function checkOrderColumns(columns: string[] | null): boolean {
  if (!columns) return false
  const unknown = columns.filter((c) => !ORDER_COLUMNS.has(c))
  if (unknown.length > 0) {
    throw new UsageError(
      `FILE: unknown column ${unknown.map((c) => `"${c}"`).join(', ')}; the columns are ${[...ORDER_COLUMNS].join(', ')}`,
    )
  }
  if (!columns.includes('order_id')) throw new UsageError('FILE: the header needs order_id')
  return true
}

/** One CSV row as an order line, or undefined (reported) when it cannot be one. */
function csvOrderRow(item: SourceRecord): OrderCsvRow | undefined {
  if (item.error !== undefined) {
    reportBadRow(item.line, item.error)
    return undefined
  }
  const row = item.record as OrderCsvRow
  if (row.order_id !== undefined) return row
  reportBadRow(item.line, 'order_id: an order needs its id')
  return undefined
}

/**
 * `kizuna import orders FILE`: CSV (one row per line item, the rows of an order adjacent) or
 * NDJSON (one order per line). Orders are saved in transactions of about 5000, once per
 * (source, order id); a bad order is reported by line and field and skipped.
 */
export async function importOrdersFile(
  db: Database,
  env: Env,
  file: string,
  opts: { source?: string },
): Promise<void> {
  const format = formatOf(file, ['csv', 'ndjson'])
  const input = await openRecords(file, format)
  const tally = { created: 0, unmatched: 0, unchanged: 0, skipped: 0 }
  const progress = startProgress(input.size, input.bytesRead)
  let batch: { order: Order; line: number }[] = []
  const seen = new Map<string | undefined, Set<string>>()
  let group = null as Group | null
  let columnsChecked = false

  // One batch is written while the next one is read.
  let writing: Promise<void> = Promise.resolve()
  const write = async (orders: { order: Order; line: number }[]) => {
    const results = await recordOrderBatch(
      db,
      env,
      orders.map((b) => b.order),
    )
    results.forEach((result, i) => {
      if ('outcome' in result) {
        if (!result.outcome.created) tally.unchanged++
        else if (result.outcome.customerId) tally.created++
        else tally.unmatched++
        return
      }
      // pg's own message names the constraint, never the values (those are in `detail`).
      const message = result.error instanceof Error ? result.error.message : 'could not be saved'
      reportBadRow(orders[i]?.line ?? 0, `order: ${message}`)
      tally.skipped++
    })
  }
  const flush = async () => {
    if (batch.length === 0) return
    const orders = batch
    batch = []
    await writing
    writing = write(orders)
    // Keeps an unhandled rejection from ending the process before the next await.
    writing.catch(() => {})
  }
  const accept = (candidate: unknown, line: number, lines: number[] | null) => {
    const checked = checkInput(orderSchema, candidate)
    if (!checked.ok) {
      for (const problem of checked.fields) {
        const path = problem.field === '(body)' ? '(row)' : problem.field
        const { column, row } = lines ? csvFieldOf(path) : { column: path, row: null }
        reportBadRow(row !== null ? (lines?.[row] ?? line) : line, `${column}: ${problem.message}`)
      }
      tally.skipped++
      return
    }
    batch.push({ order: checked.data, line })
  }
  const closeGroup = () => {
    if (!group) return
    const done = group
    group = null
    if (done.bad) tally.skipped++
    else accept(orderFromCsvRows(done.rows, opts.source), done.lines[0] ?? 0, done.lines)
  }
  const take = (item: SourceRecord) => {
    if (format === 'ndjson') {
      if (item.error !== undefined) {
        reportBadRow(item.line, item.error)
        tally.skipped++
      } else {
        accept({ source: opts.source, ...item.record }, item.line, null)
      }
      return
    }
    if (!columnsChecked) columnsChecked = checkOrderColumns(input.columns())
    const row = csvOrderRow(item)
    // A bad row still names its order when it can: that whole order is then skipped.
    const record = (item.record ?? item.partial) as OrderCsvRow | undefined
    const source = record?.source ?? opts.source
    const orderId = record?.order_id
    if (!group || group.source !== source || group.orderId !== orderId) {
      closeGroup()
      // By source, then order id: no key string to build per order.
      let ids = seen.get(source)
      if (!ids) {
        ids = new Set()
        seen.set(source, ids)
      }
      if (orderId !== undefined && ids.has(orderId)) {
        reportBadRow(item.line, 'order_id: the rows of one order must be next to each other')
        return
      }
      if (orderId !== undefined) ids.add(orderId)
      group = { source, orderId, rows: [], lines: [], bad: false }
    }
    if (row) {
      group.rows.push(row)
      group.lines.push(item.line)
    } else group.bad = true
  }

  try {
    for await (const items of input.records) {
      progress.tick(items.length)
      for (const item of items) take(item)
      if (batch.length >= BATCH) await flush()
    }
    closeGroup()
    await flush()
    await writing
  } finally {
    progress.stop()
  }
  console.log(`orders: ${summary(tally)}`)
}
