import { type OrderCsvRow, orderCsvRowSchema } from '../../orders/order.schemas.ts'
import { UsageError } from '../with-db.ts'
import { checkColumns } from './columns.ts'
import type { CsvHeader, RecordSource, SourceRecord } from './read-records.ts'

/** An order whose rows are not all next to each other: a line away from the others. */
export type Split = { strayLine: number; reported: boolean }

/** Order ids by source (by source, then order id: no key string to build per row). */
export type IdsBySource<T> = Map<string | undefined, T>

const ORDER_COLUMNS = new Set<string>(orderCsvRowSchema.keyof().options)

/**
 * The header, checked once for the whole file (its rows are strings by construction, and are
 * checked as orders): an unknown column, or no order_id, refuses the file before anything is
 * written. True once there was a header to check.
 */
export function checkOrderColumns(header: CsvHeader | null): boolean {
  if (!checkColumns(header, ORDER_COLUMNS)) return false
  if (!header?.names.includes('order_id')) throw new UsageError('FILE: the header needs order_id')
  return true
}

/** The order a CSV row is part of: its source (the first row's) and order id. */
export type OrderKey = { source: string | undefined; orderId: string }

/**
 * Which order a CSV row is part of, `current` being the order of the rows just before it; a bad
 * row still names its order when it can. A row naming the order id of the rows before it is one
 * of theirs when its source cell is blank (it says the same as their first row, as the order's
 * other columns do), the same, or the same in other letter case, or when it leaves `ordered_at`
 * blank (a later row of theirs): one of these saying another source is refused with the order
 * (differingRows). One naming another source with its own `ordered_at` is the first row of
 * another shop system's order under the same number (two shops both counting from 1001).
 * null: the row names no order (a blank order_id, or a cell before it that cannot be read), so
 * the order before it and the one after may each be its own.
 */
export function orderKeyOf(
  item: SourceRecord,
  defaultSource: string | undefined,
  current: OrderKey | null,
): OrderKey | null {
  const record = (item.record ?? item.partial) as OrderCsvRow | undefined
  const orderId = record?.order_id
  if (orderId === undefined) return null
  const source = record?.source ?? defaultSource
  if (current?.orderId === orderId && !isAnotherShopsOrder(record, source, current)) return current
  return { source, orderId }
}

/** Whether a row naming the order id of the rows before it starts another source's order. */
function isAnotherShopsOrder(
  record: OrderCsvRow | undefined,
  source: string | undefined,
  current: OrderKey,
): boolean {
  if (record?.source === undefined || record.ordered_at === undefined) return false
  return source?.toLowerCase() !== current.source?.toLowerCase()
}

/**
 * The first read of a CSV file: the orders whose rows are not all next to each other, each with
 * the line of a row away from the others. Orders are written in batches while the file is read,
 * so a row further down could otherwise find the first part of its order saved already (and a
 * re-run would find it recorded, and leave it so). Reading twice costs about 1.4 s per million
 * rows; it holds every order id once, as the adjacency check always did, then only these.
 */
export async function findSplitOrders(
  input: RecordSource,
  defaultSource: string | undefined,
  progress: () => void,
): Promise<IdsBySource<Map<string, Split>>> {
  const seen: IdsBySource<Set<string>> = new Map()
  const split: IdsBySource<Map<string, Split>> = new Map()
  let columnsChecked = false
  let current: OrderKey | null = null
  for await (const items of input.records) {
    progress()
    for (const item of items) {
      if (!columnsChecked) columnsChecked = checkOrderColumns(input.header())
      // A row naming no order skips the orders next to it (importOrdersFile), not this check.
      const key = orderKeyOf(item, defaultSource, current)
      if (key === null || key === current) continue
      current = key
      const { source, orderId } = key
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
