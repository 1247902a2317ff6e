import type { Readable } from 'node:stream'
import Papa from 'papaparse'
import { RECORDS_AT_ONCE, type ReadHeader, type SourceRecord } from './read-records.ts'

/** Rows papaparse has read and the importer has not taken yet; it pauses above this. */
const CSV_QUEUE = 2000

/**
 * CSV records (papaparse) keyed by the header's trimmed, lower-cased names; empty cells are left
 * out ("not given"), and so is a column without a name while its cells are empty (a trailing
 * comma). A row with a different number of cells than the header, or an unreadable one, is
 * reported by line and skipped. `line` is where the record ends, counting newlines inside quoted
 * cells (a quote never closed: where it opened). A quoted cell after a space (`a, "b"`) reads as quoted, as it did with csv-parse's trim.
 * The file is read only as fast as the records are taken, and closed when they no longer are.
 */
export async function* csvRecords(
  stream: Readable,
  done: ReadHeader,
): AsyncGenerator<SourceRecord[]> {
  const queue: Papa.ParseStepResult<string[]>[] = []
  let parser: Papa.Parser | null = null
  let paused = false
  let finished = false
  let failure: unknown = null
  let wake: (() => void) | null = null
  const notify = () => {
    wake?.()
    wake = null
  }
  Papa.parse<string[]>(stream as unknown as Papa.LocalFile, {
    header: false,
    delimiter: ',',
    skipEmptyLines: false,
    // Before parsing, so that a quoted first column name is read as quoted.
    beforeFirstChunk: (chunk) => chunk.replace(/^\uFEFF/, ''),
    step(result, p) {
      parser = p
      queue.push(result)
      if (queue.length >= CSV_QUEUE && !paused) {
        // The parser's pause stops parsing, not reading: the file stream pauses with it.
        paused = true
        p.pause()
        stream.pause()
      }
      notify()
    },
    complete() {
      finished = true
      notify()
    },
    error(error: Error) {
      failure = error
      notify()
    },
  })

  let header: string[] | null = null
  let line = 0
  let out: SourceRecord[] = []
  try {
    for (;;) {
      const result = queue.shift()
      if (!result) {
        if (out.length > 0) {
          yield out
          out = []
          // While the importer worked on those, papaparse may have parsed more, up to the end.
          continue
        }
        if (failure) throw failure
        if (finished) return
        if (paused) {
          // resume() may parse (and queue, and pause again) before it returns: look again.
          paused = false
          stream.resume()
          ;(parser as Papa.Parser | null)?.resume()
          continue
        }
        await new Promise<void>((resolve) => {
          wake = resolve
        })
        continue
      }
      if (out.length >= RECORDS_AT_ONCE) {
        yield out
        out = []
        // The records are taken on microtasks, which hold off all I/O: a turn of the event loop
        // now and then lets the importer's writes reach Postgres while it reads on.
        await new Promise(setImmediate)
      }
      const cells = result.data
      const start = line + 1
      for (const cell of cells) line += newlinesIn(cell)
      line++
      if (cells.length === 1 && cells[0]?.trim() === '') continue
      const error = result.errors[0]
      if (error?.code === 'MissingQuotes') {
        out.push(quoteNeverClosed(start, cells))
        continue
      }
      if (error) {
        out.push({ line, error: `(row): ${error.message}` })
        continue
      }
      if (!header) {
        header = cells.map((h) => h.trim().toLowerCase())
        done.columns = header.filter((h) => h !== '')
        continue
      }
      out.push(csvRecord(header, cells, line))
    }
  } finally {
    stream.destroy()
  }
}

function newlinesIn(cell: string): number {
  let n = 0
  for (let i = cell.indexOf('\n'); i !== -1; i = cell.indexOf('\n', i + 1)) n++
  return n
}

/**
 * A row whose last cell opens a quote never closed: papaparse read the rest of the file into it.
 * Reported at the line the quote opened on (the row starts on `start`), not the file's last.
 */
function quoteNeverClosed(start: number, cells: string[]): SourceRecord {
  let line = start
  for (const cell of cells.slice(0, -1)) line += newlinesIn(cell)
  const rest = cells.at(-1) ?? ''
  const last = line + newlinesIn(rest) - (rest.endsWith('\n') ? 1 : 0)
  return {
    line,
    error:
      '(row): the quote that opens a cell on this line is never closed, so the file to its end ' +
      `(line ${last}) was read as that cell: close it (a quote inside a cell is written "")`,
  }
}

/** One row under `header` as a record, or why it cannot be one. */
function csvRecord(header: string[], cells: string[], line: number): SourceRecord {
  const record: Record<string, string> = {}
  let unnamed = false
  for (let i = 0; i < Math.min(cells.length, header.length); i++) {
    const cell = cells[i] as string
    let value = trimmed(cell)
    if (value === '') continue // Empty cells mean "not given".
    if (value !== cell && SPACED_QUOTE.test(cell) && value.length > 1 && value.endsWith('"')) {
      value = value.slice(1, -1).replaceAll('""', '"')
    }
    const name = header[i] as string
    if (name === '') unnamed = true
    else record[name] = value
  }
  if (cells.length !== header.length) {
    const hint = cells.some((c) => SPACED_QUOTE.test(c))
      ? ' (a space before a quoted cell that holds a comma? put the quote first)'
      : ''
    const error = `(row): ${cells.length} cells where the header has ${header.length}${hint}`
    return { line, error, partial: record }
  }
  if (unnamed) return { line, error: '(row): a value in a column without a name', partial: record }
  return { line, record }
}

/** A cell that starts with whitespace, then a quote. */
const SPACED_QUOTE = /^\s+"/

/** The cell without surrounding whitespace (most cells have none: no copy then). */
function trimmed(cell: string): string {
  if (cell === '') return cell
  return cell.charCodeAt(0) <= 32 || cell.charCodeAt(cell.length - 1) <= 32 ? cell.trim() : cell
}
