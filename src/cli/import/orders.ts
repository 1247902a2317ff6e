import type { Env } from '../../config/env.ts'
import {
  type Order,
  type OrderCsvRow,
  orderCsvRowSchema,
  orderSchema,
} from '../../orders/order.schemas.ts'
import { BatchCutShort, type BatchResult, recordOrderBatch } from '../../orders/order.service.ts'
import { csvFieldOf, orderFromCsvRows } from '../../orders/order-csv.ts'
import type { Database } from '../../platform/db.ts'
import { AppError, isConnectionError } from '../../platform/errors.ts'
import { checkInput } from '../../platform/input.ts'
import { UsageError } from '../with-db.ts'
import { reportBadRow, startProgress, summary } from './progress.ts'
import { formatOf, openRecords, type RecordSource, type SourceRecord } from './read-records.ts'
import { relinkAfterImport } from './relink-after-import.ts'

const BATCH = 5000

type Group = {
  source: string | undefined
  orderId: string | undefined
  rows: OrderCsvRow[]
  lines: number[]
  bad: boolean
  /** The line of its first row. */
  first: number
  /** Its order has rows elsewhere in the file too, from findSplitOrders. */
  split: Split | undefined
}

/** busy: orders Postgres kept aborting (a deadlock), to import again; skipped: bad ones. */
type OrderTally = Record<'created' | 'unmatched' | 'unchanged' | 'skipped' | 'busy', number>

/** An order whose rows are not all next to each other: a line away from the others. */
type Split = { strayLine: number; reported: boolean }

/** Order ids by source (by source, then order id: no key string to build per row). */
type IdsBySource<T> = Map<string | undefined, T>

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

/** Which order a CSV row belongs to; a bad row still names its order when it can. */
function orderKeyOf(item: SourceRecord, defaultSource: string | undefined) {
  const record = (item.record ?? item.partial) as OrderCsvRow | undefined
  return { source: record?.source ?? defaultSource, orderId: record?.order_id }
}

/**
 * The first read of a CSV file: the orders whose rows are not all next to each other, each with
 * the line of a row away from the others. Orders are written in batches while the file is read,
 * so a row further down could otherwise find the first part of its order saved already (and a
 * re-run would find it recorded, and leave it so). Reading twice costs about 1.4 s per million
 * rows; it holds every order id once, as the adjacency check always did, then only these.
 */
async function findSplitOrders(
  input: RecordSource,
  defaultSource: string | undefined,
  progress: () => void,
): Promise<IdsBySource<Map<string, Split>>> {
  const seen: IdsBySource<Set<string>> = new Map()
  const split: IdsBySource<Map<string, Split>> = new Map()
  let columnsChecked = false
  let current: { source: string | undefined; orderId: string | undefined } | null = null
  for await (const items of input.records) {
    progress()
    for (const item of items) {
      if (!columnsChecked) columnsChecked = checkOrderColumns(input.columns())
      const { source, orderId } = orderKeyOf(item, defaultSource)
      if (current && current.source === source && current.orderId === orderId) continue
      current = { source, orderId }
      if (orderId === undefined) continue
      let ids = seen.get(source)
      if (!ids) {
        ids = new Set()
        seen.set(source, ids)
      }
      if (!ids.has(orderId)) {
        ids.add(orderId)
        continue
      }
      let stray = split.get(source)
      if (!stray) {
        stray = new Map()
        split.set(source, stray)
      }
      if (!stray.has(orderId)) stray.set(orderId, { strayLine: item.line, reported: false })
    }
  }
  return split
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
 * The import stopped while the orders from `line` on were written (Postgres went away): what
 * was saved before, and that importing the file again picks up the rest. Those orders were not
 * saved, or not all (a commit whose answer was lost), so no number is given for them.
 */
function stoppedAt(line: number, cause: unknown, tally: OrderTally): Error {
  const detail = cause instanceof Error ? cause.message : String(cause)
  const outage = isConnectionError(cause)
  const { created, unmatched, unchanged, skipped, busy } = tally
  return new Error(
    `the import stopped at line ${line}: ` +
      `${outage ? 'Postgres (DATABASE_URL) went away or cannot write: ' : ''}${detail}. ` +
      `Saved before line ${line}: ${summary({ created, unmatched, unchanged })} ` +
      `(${summary({ skipped, busy })}: reported above); the orders from line ${line} on are not ` +
      `saved, or not all. Import the file again once ${outage ? 'Postgres is back' : 'that is fixed'}: ` +
      'the orders saved are then counted unchanged',
  )
}

/**
 * `kizuna import orders FILE`: CSV (one row per line item, the rows of an order adjacent) or
 * NDJSON (one order per line). Orders are saved in transactions of about 5000, once per
 * (source, order id); a bad order is reported by line and field and skipped, one Postgres kept
 * aborting (a deadlock) is reported busy, and when Postgres goes away the import stops, saying
 * what it saved (stoppedAt). A CSV file is read twice: first for orders whose rows are not next
 * to each other, skipped whole (never saved in part), then to save the others.
 */
export async function importOrdersFile(
  db: Database,
  env: Env,
  file: string,
  opts: { source?: string },
): Promise<void> {
  const format = formatOf(file, ['csv', 'ndjson'])
  // CSV is read twice (findSplitOrders, then the import): one progress bar over both reads.
  const firstRead = format === 'csv' ? await openRecords(file, format) : null
  let input = firstRead ?? (await openRecords(file, format))
  const tally: OrderTally = { created: 0, unmatched: 0, unchanged: 0, skipped: 0, busy: 0 }
  const progress = startProgress(input.size * (firstRead ? 2 : 1), () =>
    firstRead && input !== firstRead ? input.size + input.bytesRead() : input.bytesRead(),
  )
  let split: IdsBySource<Map<string, Split>> = new Map()
  let batch: { order: Order; line: number }[] = []
  let group = null as Group | null
  let columnsChecked = false

  // One batch is written while the next one is read.
  let writing: Promise<void> = Promise.resolve()
  const count = (orders: { line: number }[], results: BatchResult[]) => {
    results.forEach((result, i) => {
      if ('outcome' in result) {
        if (!result.outcome.created) tally.unchanged++
        else if (result.outcome.customerId) tally.created++
        else tally.unmatched++
        return
      }
      // Ours names the field (an order recorded before with another customer or total), or says
      // it was busy; pg's names the constraint, never the values (those are in `detail`).
      const { error } = result
      const message =
        error instanceof AppError
          ? error.message
          : `order: ${error instanceof Error ? error.message : 'could not be saved'}`
      reportBadRow(orders[i]?.line ?? 0, message)
      if (error instanceof AppError && error.code === 'UNAVAILABLE') tally.busy++
      else tally.skipped++
    })
  }
  const write = async (orders: { order: Order; line: number }[]) => {
    try {
      count(
        orders,
        await recordOrderBatch(
          db,
          env,
          orders.map((b) => b.order),
        ),
      )
    } catch (error) {
      if (!(error instanceof BatchCutShort)) throw error
      count(orders, error.saved)
      throw stoppedAt(orders[error.saved.length]?.line ?? 0, error.cause, tally)
    }
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
    if (done.split) {
      // Reported and counted at its first rows; its later rows are skipped with it.
      if (done.split.reported) return
      done.split.reported = true
      reportBadRow(
        done.first,
        `order_id: the rows of this order are not next to each other (line ` +
          `${done.split.strayLine} is one of them): the whole order is skipped; put its rows ` +
          'together and import again',
      )
      tally.skipped++
    } else if (done.bad) tally.skipped++
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
    const { source, orderId } = orderKeyOf(item, opts.source)
    if (!group || group.source !== source || group.orderId !== orderId) {
      closeGroup()
      const stray = orderId === undefined ? undefined : split.get(source)?.get(orderId)
      group = { source, orderId, rows: [], lines: [], bad: false, first: item.line, split: stray }
    }
    if (row) {
      group.rows.push(row)
      group.lines.push(item.line)
    } else group.bad = true
  }

  try {
    if (firstRead) {
      split = await findSplitOrders(firstRead, opts.source, () => progress.tick(0))
      input = await openRecords(file, format)
    }
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
  const { busy, ...counted } = tally
  console.log(`orders: ${summary(busy > 0 ? tally : counted)}`)
  // A matched order can move its customer to another segment, and so another rich menu.
  if (tally.created > 0) await relinkAfterImport(env)
}
