import type { Readable } from 'node:stream'
import Papa from 'papaparse'
import { UsageError } from '../with-db.ts'
import { CLOSE_IT, STRAY, STRAY_FIX } from './csv-rows.ts'
import { RECORDS_AT_ONCE, type ReadHeader, type SourceRecord } from './read-records.ts'

/** Rows papaparse has read and the importer has not taken yet; it pauses above this. */
const CSV_QUEUE = 2000

/**
 * CSV records (papaparse) keyed by the header's trimmed, lower-cased names; empty cells are left
 * out ("not given"), and so is a column without a name while its cells are empty (a trailing
 * comma); a row of empty cells only (`,,,`) is skipped as a blank line is. A row with a
 * different number of cells than the header, or an unreadable one, is reported by line and
 * skipped. `line` is where the record ends, counting newlines inside quoted cells (a row
 * papaparse could not read: where it starts, or where a quote never closed opened). A quoted
 * cell after a space (`a, "b"`) reads as quoted, as it did with csv-parse's trim.
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
        if (finished) {
          // Nothing to import, and no columns to check: the wrong file, most likely.
          if (!header) {
            throw new UsageError(
              'FILE: no header line (the file is empty or blank): a CSV file starts with a line ' +
                'naming its columns',
            )
          }
          return
        }
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
      if (result.errors.length > 0) {
        const unread = unreadableRow(start, line, cells, result.errors, header)
        // The next row is no header either: the file is refused, not read under it.
        if (!header) {
          throw new UsageError(
            `FILE: line ${unread.line}: the header cannot be read: ${unread.error?.replace('(row): ', '')}`,
          )
        }
        out.push(unread)
        continue
      }
      // A blank line, or a spreadsheet's empty row (`,,,`): no row at all.
      if (cells.every(isBlank)) continue
      if (!header) {
        header = cells.map((h) => h.trim().toLowerCase())
        done.header = { names: header, line }
        continue
      }
      out.push(csvRecord(header, cells, line))
    }
  } finally {
    stream.destroy()
  }
}

const isBlank = (cell: string) => cell === '' || cell.trim() === ''

function newlinesIn(cell: string): number {
  let n = 0
  for (let i = cell.indexOf('\n'); i !== -1; i = cell.indexOf('\n', i + 1)) n++
  return n
}

/**
 * A row papaparse could not read as written (a quote error: every one of `errors` is looked
 * at), from line `start` to `end`. A quote never closed is reported where it opened; a stray
 * quote in a quoted cell (`"Taro" Yamada`: papaparse reads on to the next quote that ends a cell,
 * lines later maybe) at the line the row starts on, naming the lines it took in, which are not
 * imported either: none of them is lost without a word. A row of one line with a stray quote
 * keeps, as its `partial`, the cells before the first one holding a quote (read as written: which
 * order the row is part of, say); the cells from there on are out of place. One that took in
 * other lines has none: whose rows those were is unknown.
 */
function unreadableRow(
  start: number,
  end: number,
  cells: string[],
  errors: Papa.ParseError[],
  header: string[] | null,
): SourceRecord {
  const neverClosed = errors.find((e) => e.code === 'MissingQuotes')
  // papaparse's index is where the quoted cell's text starts: the same cell's errors share it.
  const strayIn = (e: Papa.ParseError) =>
    errors.some((s) => s.code === 'InvalidQuotes' && s.index === e.index)
  if (neverClosed) return quoteNeverClosed(start, cells, strayIn(neverClosed))
  if (!errors.some((e) => e.code === 'InvalidQuotes')) {
    return { line: start, error: `(row): ${errors[0]?.message}` }
  }
  const quoted = Math.max(
    0,
    cells.findIndex((c) => c.includes('"')),
  )
  if (end === start) {
    return {
      line: start,
      error: `(row): a quoted cell has text after its closing quote ("a" b): ${STRAY_FIX}`,
      ...(header ? { partial: cellsByName(header, cells.slice(0, quoted)).record } : {}),
    }
  }
  // The stray quote is kept in its cell's text, which starts on this line.
  const at = lineOfCell(start, cells, quoted)
  return {
    line: start,
    error:
      `(row): lines ${start}–${end} were read as one row: a quoted cell on line ${at} has text ` +
      `after its closing quote ("a" b): ${STRAY_FIX}`,
  }
}

/** The line cell `index` of a row starting on `start` starts on. */
function lineOfCell(start: number, cells: string[], index: number): number {
  let line = start
  for (const cell of cells.slice(0, index)) line += newlinesIn(cell)
  return line
}

/**
 * A row whose last cell opens a quote never closed: papaparse read the rest of the file into it.
 * Reported at the line the quote opened on (the row starts on `start`), not the file's last;
 * `stray`: the cell's quote was closed, but text followed it (`"Taro" Yamada`).
 */
function quoteNeverClosed(start: number, cells: string[], stray: boolean): SourceRecord {
  const line = lineOfCell(start, cells, cells.length - 1)
  const rest = cells.at(-1) ?? ''
  const last = line + newlinesIn(rest) - (rest.endsWith('\n') ? 1 : 0)
  const readAs = `so the file to its end (line ${last}) was read as that cell`
  return {
    line,
    error: stray
      ? `(row): ${STRAY}, ${readAs}: ${STRAY_FIX}`
      : `(row): the quote that opens a cell on this line is never closed, ${readAs}: ${CLOSE_IT}`,
  }
}

/**
 * Cells under `header` by name (as many as both have); `unnamed`: a value in a column without a
 * name.
 */
function cellsByName(header: string[], cells: string[]) {
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
  return { record, unnamed }
}

/** One row under `header` as a record, or why it cannot be one. */
function csvRecord(header: string[], cells: string[], line: number): SourceRecord {
  const { record, unnamed } = cellsByName(header, cells)
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
