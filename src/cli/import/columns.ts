import { UsageError } from '../with-db.ts'

/**
 * A CSV file's header, checked once for the whole file (`columns`: RecordSource.columns()): an
 * unknown column (a typo such as "e-mail") refuses the file before anything is written, rather
 * than refusing every row, or skipping what it held. True once there was a header to check.
 */
export function checkColumns(columns: string[] | null, known: ReadonlySet<string>): boolean {
  if (!columns) return false
  const unknown = columns.filter((c) => !known.has(c))
  if (unknown.length > 0) {
    throw new UsageError(
      `FILE: unknown column ${unknown.map((c) => `"${c}"`).join(', ')}; the columns are ${[...known].join(', ')}`,
    )
  }
  return true
}
