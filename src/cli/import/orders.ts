import type { Env } from '../../config/env.ts'
import { type Order, type OrderCsvRow, orderSchema } from '../../orders/order.schemas.ts'
import { BatchCutShort, type BatchResult, recordOrderBatch } from '../../orders/order.service.ts'
import {
  csvFieldOf,
  differingRows,
  inCsvColumns,
  orderFromCsvRows,
} from '../../orders/order-csv.ts'
import { sourceRefusal } from '../../orders/order-source.ts'
import type { Database } from '../../platform/db.ts'
import { AppError } from '../../platform/errors.ts'
import { checkInput } from '../../platform/input.ts'
import { relinkChangedCustomers } from '../relink.ts'
import { UsageError } from '../with-db.ts'
import { holdReports } from './held-reports.ts'
import { startProgress, summary } from './progress.ts'
import { formatOf, openRecords, type SourceRecord } from './read-records.ts'
import {
  checkOrderColumns,
  findSplitOrders,
  type IdsBySource,
  type OrderKey,
  orderKeyOf,
  type Split,
} from './split-orders.ts'
import { stoppedAt } from './stopped.ts'

const BATCH = 5000

type Group = {
  /** null: rows naming no order at the file's start, until the order after them (adopted). */
  key: OrderKey | null
  rows: OrderCsvRow[]
  lines: number[]
  bad: boolean
  /** The line of its first row. */
  first: number
  /** Its order has rows elsewhere in the file too, from findSplitOrders. */
  split: Split | undefined
  /** The line of a row next to it naming no order, which may be one of its rows. */
  unplaced: number | undefined
}

/**
 * busy: orders Postgres kept aborting or giving up on (a deadlock, a timeout), to import again;
 * skipped: bad ones.
 */
type OrderTally = Record<'created' | 'unmatched' | 'unchanged' | 'skipped' | 'busy', number>

/** One CSV row as an order line, or why it cannot be one. */
function csvOrderRow(item: SourceRecord): OrderCsvRow | { error: string } {
  if (item.error !== undefined) return { error: item.error }
  const row = item.record as OrderCsvRow
  return row.order_id !== undefined
    ? row
    : {
        error:
          'order_id: blank; every row names its order (a blank order_id is not read as the ' +
          "row above's)",
      }
}

/**
 * `kizuna import orders FILE`: CSV (one row per line item, the rows of an order adjacent) or
 * NDJSON (one order per line). Orders are saved in transactions of about 5000, once per
 * (source, order id); a bad order is reported by line and field and skipped, one Postgres kept
 * aborting or giving up on (a deadlock, a lock or statement timeout) is reported busy, and when
 * Postgres goes away or cannot write (read-only) the import stops, saying what it saved (stoppedAt; the relink is still queued for it). A CSV file is read twice: first
 * for orders whose rows are not next to each other, skipped whole (never saved in part), then to
 * save the others; a row naming no order skips the orders on either side of it whole. Answers how many orders it did not save: skipped and busy.
 */
export async function importOrdersFile(
  db: Database,
  env: Env,
  file: string,
  opts: { source?: string },
): Promise<number> {
  const format = formatOf(file, ['csv', 'ndjson'])
  // Every order it names would be refused: the file is, before anything is read.
  const refused = opts.source ? await sourceRefusal(db, opts.source.trim()) : null
  if (refused) throw new UsageError(`--source: ${refused}: nothing was imported`)
  // CSV is read twice (findSplitOrders, then the import): one progress bar over both reads.
  const firstRead = format === 'csv' ? await openRecords(file, format) : null
  let input = firstRead ?? (await openRecords(file, format))
  const tally: OrderTally = { created: 0, unmatched: 0, unchanged: 0, skipped: 0, busy: 0 }
  const progress = startProgress(input.size * (firstRead ? 2 : 1), () =>
    firstRead && input !== firstRead ? input.size + input.bytesRead() : input.bytesRead(),
  )
  let split: IdsBySource<Map<string, Split>> = new Map()
  let batch: { order: Order; line: number }[] = []
  // Bad rows are reported and counted once the orders before them are written.
  const bad = holdReports(tally)
  let inFlight: { line: number }[] = []
  const firstUnwritten = () => inFlight[0]?.line ?? batch[0]?.line ?? Number.POSITIVE_INFINITY
  let group = null as Group | null
  /** The line of a row naming no order right before the group to start next. */
  let unplacedBefore: number | undefined
  const newGroup = (key: OrderKey | null, line: number): Group => ({
    key,
    rows: [],
    lines: [],
    bad: false,
    first: line,
    split: key ? split.get(key.source)?.get(key.orderId) : undefined,
    unplaced: undefined,
  })
  let columnsChecked = false
  let failure: unknown

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
          ? format === 'csv'
            ? inCsvColumns(error)
            : error.message
          : `order: ${error instanceof Error ? error.message : 'could not be saved'}`
      const busy = error instanceof AppError && error.code === 'UNAVAILABLE'
      bad.add(orders[i]?.line ?? 0, message, busy ? 'busy' : 'skipped')
    })
  }
  const write = async (orders: { order: Order; line: number }[]) => {
    inFlight = orders
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
      const line = orders[error.saved.length]?.line ?? 0
      bad.stop(line)
      const { created, unmatched, unchanged, skipped, busy } = tally
      throw stoppedAt(line, error.cause, {
        what: 'orders',
        saved: { created, unmatched, unchanged },
        reported: { skipped, busy },
      })
    }
    inFlight = []
    bad.release(firstUnwritten())
  }
  const flush = async () => {
    // The batch stays unwritten (firstUnwritten) until its write starts.
    await writing
    if (batch.length === 0) return
    const orders = batch
    batch = []
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
        bad.add(row !== null ? (lines?.[row] ?? line) : line, `${column}: ${problem.message}`)
      }
      bad.add(line, undefined, 'skipped')
      return
    }
    batch.push({ order: checked.data, line })
  }
  const closeGroup = () => {
    if (!group) return
    const done = group
    group = null
    if (done.key && done.unplaced !== undefined && !done.split) {
      // Which order the row is one of is unknown: this one is never saved without it.
      bad.add(
        done.first,
        `order_id: line ${done.unplaced} names no order and may be one of this order's rows: ` +
          `the whole order is skipped; give line ${done.unplaced} its order_id and import again`,
      )
    }
    if (done.split) {
      // Reported and counted at its first rows; its later rows are skipped with it.
      if (done.split.reported) return
      done.split.reported = true
      bad.add(
        done.first,
        `order_id: the rows of this order are not next to each other (line ` +
          `${done.split.strayLine} is one of them): the whole order is skipped; put its rows ` +
          'together and import again',
        'skipped',
      )
      return
    }
    // Rows that disagree on the order's total, customer or time: which one is right is unknown.
    const differing = done.bad ? [] : differingRows(done.rows, opts.source)
    for (const { row, problem } of differing) bad.add(done.lines[row] ?? done.first, problem)
    if (done.bad || differing.length > 0) bad.add(done.first, undefined, 'skipped')
    else accept(orderFromCsvRows(done.rows, opts.source), done.lines[0] ?? 0, done.lines)
  }
  const take = (item: SourceRecord) => {
    if (format === 'ndjson') {
      if (item.error !== undefined) bad.add(item.line, item.error, 'skipped')
      else {
        accept({ source: opts.source, ...item.record }, item.line, null)
      }
      return
    }
    if (!columnsChecked) columnsChecked = checkOrderColumns(input.header())
    const row = csvOrderRow(item)
    // A bad row still names its order when it can: that whole order is then skipped.
    const key = orderKeyOf(item, opts.source, group?.key ?? null)
    if (key === null) {
      // Naming no order, it may be the last row of the order before it or the first of the
      // one after: both are skipped whole (never saved without it), and it is reported.
      bad.add(item.line, 'error' in row ? row.error : '(row): names no order')
      if (group) {
        group.bad = true
        group.unplaced ??= item.line
      } else {
        group = { ...newGroup(null, item.line), bad: true, unplaced: item.line }
      }
      unplacedBefore ??= item.line
      return
    }
    if (group?.key === key) {
      // Rows naming no order between rows of this one are its own (or no order's).
      unplacedBefore = undefined
    } else if (group && group.key === null) {
      // Rows naming no order at the file's start: this order's first rows, maybe.
      group.key = key
      group.first = item.line
      group.split = split.get(key.source)?.get(key.orderId)
      unplacedBefore = undefined
    } else {
      closeGroup()
      group = newGroup(key, item.line)
      if (unplacedBefore !== undefined) {
        group.bad = true
        group.unplaced = unplacedBefore
        unplacedBefore = undefined
      }
    }
    if ('error' in row) {
      bad.add(item.line, row.error)
      group.bad = true
    } else {
      group.rows.push(row)
      group.lines.push(item.line)
    }
  }

  try {
    if (firstRead) {
      split = await findSplitOrders(firstRead, opts.source, () => progress.tick(0))
      input = await openRecords(file, format)
    }
    for await (const items of input.records) {
      progress.tick(items.length)
      for (const item of items) take(item)
      if (firstUnwritten() === Number.POSITIVE_INFINITY) bad.release(Number.POSITIVE_INFINITY)
      if (batch.length >= BATCH || bad.size >= BATCH) await flush()
    }
    closeGroup()
    await flush()
    await writing
  } catch (error) {
    failure = error
  } finally {
    progress.stop()
  }
  // After a stop, only what came before its line is still held.
  bad.release(Number.POSITIVE_INFINITY)
  if (failure === undefined) {
    const { busy, ...counted } = tally
    console.log(`orders: ${summary(busy > 0 ? tally : counted)}`)
  }
  // A matched order can move its customer to another segment, and so another rich menu. The
  // relink needs Redis only: it is queued for the orders saved before a stop too.
  if (tally.created > 0) await relinkChangedCustomers(env, 'import')
  if (failure !== undefined) throw failure
  return tally.skipped + tally.busy
}
