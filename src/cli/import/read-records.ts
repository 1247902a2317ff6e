import { createReadStream, existsSync, type ReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { extname } from 'node:path'
import { createInterface } from 'node:readline'
import Papa from 'papaparse'
import { UsageError } from '../with-db.ts'

export type Format = 'csv' | 'ndjson'

/** One input record with the line it ends on (1-based), or why it could not be read. */
export type SourceRecord =
  | { line: number; record: Record<string, unknown>; error?: undefined; partial?: undefined }
  | {
      line: number
      error: string
      record?: undefined
      /** A bad CSV row's cells read by position anyway: which order it was part of, say. */
      partial?: Record<string, string>
    }

export type RecordSource = {
  size: number
  /** Bytes read so far, for the progress bar. */
  bytesRead(): number
  /** A CSV file's column names (trimmed, lower case) once its first record is read. */
  columns(): string[] | null
  /** The records in file order, a few hundred at a time (one await per record cost ~1 s per 1M). */
  records: AsyncGenerator<SourceRecord[]>
}

/** `.csv` → CSV; `.ndjson`, `.jsonl` → one JSON object per line. */
export function formatOf(file: string, allowed: Format[]): Format {
  const ext = extname(file).toLowerCase()
  const format: Format | undefined =
    ext === '.csv' ? 'csv' : ext === '.ndjson' || ext === '.jsonl' ? 'ndjson' : undefined
  if (!format || !allowed.includes(format)) {
    const names = allowed.map((f) => (f === 'csv' ? '.csv' : '.ndjson or .jsonl')).join(', ')
    throw new UsageError(`FILE: use a ${names} file`)
  }
  return format
}

/** The file's format, checked before anything opens a database: a readable file of `allowed`. */
export function checkImportFile(file: string, allowed: Format[]): void {
  formatOf(file, allowed)
  if (!existsSync(file)) throw new UsageError(`FILE: cannot read ${file}`)
}

export async function openRecords(file: string, format: Format): Promise<RecordSource> {
  const info = await stat(file).catch(() => {
    throw new UsageError(`FILE: cannot read ${file}`)
  })
  // Decoded as UTF-8 by the stream, so a character split between two chunks stays whole.
  const stream = createReadStream(file, { encoding: 'utf8' })
  // Bytes read from the file: the stream pauses while the parsed rows wait, so this stays near
  // what the importer has taken.
  const done: Progress = { bytes: 0, header: null }
  return {
    size: info.size,
    bytesRead: () => done.bytes,
    columns: () => done.header,
    records: format === 'csv' ? csvRecords(stream, done) : ndjsonRecords(stream, done),
  }
}

type Progress = { bytes: number; header: string[] | null }

/** Records handed over at once. */
const RECORDS_AT_ONCE = 256

/** Rows papaparse has read and the importer has not taken yet; it pauses above this. */
const CSV_QUEUE = 2000

/**
 * CSV records (papaparse) keyed by the header's trimmed, lower-cased names; empty cells are left
 * out ("not given"), and so is a column without a name while its cells are empty (a trailing
 * comma). A row with a different number of cells than the header, or an unreadable one, is
 * reported by line and skipped. `line` is where the record ends, counting newlines inside quoted
 * cells. A quoted cell after a space (`a, "b"`) reads as quoted, as it did with csv-parse's trim.
 * The file is read only as fast as the records are taken, and closed when they no longer are.
 */
async function* csvRecords(stream: ReadStream, done: Progress): AsyncGenerator<SourceRecord[]> {
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
      done.bytes = stream.bytesRead
      const cells = result.data
      line++
      for (const cell of cells) {
        for (let i = cell.indexOf('\n'); i !== -1; i = cell.indexOf('\n', i + 1)) line++
      }
      if (cells.length === 1 && cells[0]?.trim() === '') continue
      if (result.errors.length > 0) {
        out.push({ line, error: `(row): ${result.errors[0]?.message ?? 'unreadable CSV row'}` })
        continue
      }
      if (!header) {
        header = cells.map((h) => h.trim().toLowerCase())
        done.header = header.filter((h) => h !== '')
        continue
      }
      out.push(csvRecord(header, cells, line))
    }
  } finally {
    stream.destroy()
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

async function* ndjsonRecords(stream: ReadStream, done: Progress): AsyncGenerator<SourceRecord[]> {
  let line = 0
  let out: SourceRecord[] = []
  try {
    for await (const read of createInterface({ input: stream, crlfDelay: Infinity })) {
      line++
      done.bytes += Buffer.byteLength(read) + 1
      // A byte-order mark (Windows tools write one) is not part of the first object.
      const text = line === 1 ? read.replace(/^\uFEFF/, '') : read
      if (text.trim() === '') continue
      if (out.length >= RECORDS_AT_ONCE) {
        yield out
        out = []
      }
      try {
        const value: unknown = JSON.parse(text)
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          out.push({ line, error: '(row): each line must be one JSON object' })
        } else {
          out.push({ line, record: value as Record<string, unknown> })
        }
      } catch {
        out.push({ line, error: '(row): not valid JSON' })
      }
    }
    if (out.length > 0) yield out
  } finally {
    stream.destroy()
  }
}
