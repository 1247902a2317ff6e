import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { extname } from 'node:path'
import { createInterface } from 'node:readline'
import Papa from 'papaparse'
import { UsageError } from '../with-db.ts'

export type Format = 'csv' | 'ndjson'

/** One input record with the line it ends on (1-based), or why it could not be read. */
export type SourceRecord =
  | { line: number; record: Record<string, unknown>; error?: undefined }
  | { line: number; error: string; record?: undefined }

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

export async function openRecords(file: string, format: Format): Promise<RecordSource> {
  const info = await stat(file).catch(() => {
    throw new UsageError(`FILE: cannot read ${file}`)
  })
  // Decoded as UTF-8 by the stream, so a character split between two chunks stays whole.
  const stream = createReadStream(file, { encoding: 'utf8' })
  // Bytes the parser has consumed (the stream itself reads ahead).
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
 * out ("not given"). A row with a different number of cells than the header, or an unreadable
 * one, is reported by line and skipped. `line` is where the record ends, counting newlines
 * inside quoted cells.
 */
async function* csvRecords(
  stream: NodeJS.ReadableStream & { bytesRead?: number },
  done: Progress,
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
    step(result, p) {
      parser = p
      queue.push(result)
      if (queue.length >= CSV_QUEUE && !paused) {
        paused = true
        p.pause()
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
    done.bytes = stream.bytesRead ?? done.bytes
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
      header = cells.map((h, i) => (i === 0 ? h.replace(/^\uFEFF/, '') : h).trim().toLowerCase())
      done.header = header
      continue
    }
    if (cells.length !== header.length) {
      out.push({
        line,
        error: `(row): ${cells.length} cells where the header has ${header.length}`,
      })
      continue
    }
    const record: Record<string, string> = {}
    for (let i = 0; i < cells.length; i++) {
      const value = trimmed(cells[i] as string)
      // Empty cells mean "not given".
      if (value !== '') record[header[i] as string] = value
    }
    out.push({ line, record })
  }
}

/** The cell without surrounding whitespace (most cells have none: no copy then). */
function trimmed(cell: string): string {
  if (cell === '') return cell
  return cell.charCodeAt(0) <= 32 || cell.charCodeAt(cell.length - 1) <= 32 ? cell.trim() : cell
}

async function* ndjsonRecords(
  stream: NodeJS.ReadableStream,
  done: { bytes: number },
): AsyncGenerator<SourceRecord[]> {
  let line = 0
  let out: SourceRecord[] = []
  for await (const text of createInterface({ input: stream, crlfDelay: Infinity })) {
    line++
    done.bytes += Buffer.byteLength(text) + 1
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
}
