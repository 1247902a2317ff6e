import type { AppError, FieldProblem } from '../platform/errors.ts'
import type { OrderCsvRow } from './order.schemas.ts'

/** "12" → 12; anything else stays as it is, for the order schema to refuse by field. */
function numberish(value: string | undefined): unknown {
  return value !== undefined && /^\s*\d+\s*$/.test(value) ? Number(value) : value
}

/** The columns of the order itself, which each of its rows repeats. */
const ORDER_COLUMNS = [
  'source',
  'customer_external_id',
  'customer_email',
  'ordered_at',
  'total',
] as const

/**
 * A cell of an order column as its rows are compared: as orderSchema reads it, so that the same
 * value written otherwise agrees (an email in capitals, a time in another offset, " 200").
 */
const comparable: Record<(typeof ORDER_COLUMNS)[number], (cell: string) => unknown> = {
  // As recorded: a source in another case is another shop system's.
  source: (cell) => cell.trim(),
  customer_external_id: (cell) => cell.trim(),
  customer_email: (cell) => cell.normalize('NFKC').trim().toLowerCase(),
  ordered_at: (cell) => {
    const at = Date.parse(cell.trim())
    return Number.isNaN(at) ? cell.trim() : at
  },
  total: (cell) => {
    const total = numberish(cell)
    return typeof total === 'string' ? total.trim() : total
  },
}

/**
 * Where the rows of one order disagree with its first row on the order's own columns (source,
 * total, customer, time): each such row (its index in `rows`) and column. orderFromCsvRows takes
 * those from the first row (its source, when blank, from `defaultSource`): an order whose rows
 * disagree is refused whole, never merged. A blank cell on a later row says the same as the
 * first row (files that write the order's fields on its first line-item row only); only a value
 * that says otherwise differs.
 */
export function differingRows(
  rows: OrderCsvRow[],
  defaultSource?: string,
): { row: number; problem: string }[] {
  const [first, ...others] = rows
  if (!first) return []
  const firstCells = { ...first, source: first.source ?? defaultSource }
  const differing: { row: number; problem: string }[] = []
  others.forEach((r, i) => {
    for (const column of ORDER_COLUMNS) {
      const cell = r[column] ?? ''
      if (cell.trim() === '') continue
      const read = comparable[column]
      if (read(cell) !== read(firstCells[column] ?? '')) {
        differing.push({ row: i + 1, problem: `${column}: differs from the order's first row` })
      }
    }
  })
  return differing
}

/**
 * Puts the CSV rows of one order (one row per line item) into the shape of orderSchema; its
 * order's fields come from the first row (differingRows finds rows that say otherwise).
 */
export function orderFromCsvRows(rows: OrderCsvRow[], defaultSource?: string): unknown {
  const first = rows[0]
  if (!first) throw new Error('an order needs at least one row')
  const customer: Record<string, string> = {}
  if (first.customer_external_id !== undefined) customer.externalId = first.customer_external_id
  if (first.customer_email !== undefined) customer.email = first.customer_email
  return {
    source: first.source ?? defaultSource,
    orderId: first.order_id,
    customer,
    orderedAt: first.ordered_at,
    total: numberish(first.total),
    lines: rows.map((r) => ({
      sku: r.sku,
      ...(r.name !== undefined ? { name: r.name } : {}),
      quantity: numberish(r.quantity),
      unitPrice: numberish(r.unit_price),
    })),
  }
}

const CSV_FIELDS: Record<string, string> = {
  source: 'source (column or --source)',
  orderId: 'order_id',
  'customer.externalId': 'customer_external_id',
  'customer.email': 'customer_email',
  orderedAt: 'ordered_at',
  total: 'total',
  sku: 'sku',
  name: 'name',
  quantity: 'quantity',
  unitPrice: 'unit_price',
}

/** Names an orderSchema field by its CSV column, and the row it came from (`lines.2.sku`). */
export function csvFieldOf(path: string): { column: string; row: number | null } {
  const line = path.match(/^lines\.(\d+)\.(.+)$/)
  if (line) return { column: CSV_FIELDS[line[2] ?? ''] ?? path, row: Number(line[1]) }
  return { column: CSV_FIELDS[path] ?? path, row: null }
}

/**
 * A refusal of an order (`customer.externalId: …`, fieldsError's shape) as a CSV file names its
 * fields: by their columns (`customer_external_id: …`).
 */
export function inCsvColumns(error: AppError): string {
  const fields = Array.isArray(error.details) ? (error.details as FieldProblem[]) : []
  let message = error.message
  for (const { field } of fields) {
    const { column } = csvFieldOf(field)
    if (column === field) continue
    const named = new RegExp(`(^|; )${field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `, 'g')
    message = message.replace(named, `$1${column}: `)
  }
  return message
}
