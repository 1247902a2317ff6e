import { createReadStream, existsSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { extname } from 'node:path'
import type { Readable } from 'node:stream'
import { UsageError } from '../with-db.ts'
import { csvRecords } from './csv-records.ts'
import { csvRows } from './csv-rows.ts'
import { ndjsonRecords } from './ndjson-records.ts'
import { decodeUtf8, notUtf8, utf8Lines } from './utf8-text.ts'

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
  /** A CSV file's header once its first record is read. */
  header(): CsvHeader | null
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

/** Bytes read at once by the check: larger chunks than a stream's 64 KB cost less a byte. */
const CHUNK = 1024 * 1024

/**
 * The file, checked before anything opens a database: a readable file of `allowed`, UTF-8 text
 * throughout, and a CSV file one whose quotes close and whose rows are at most 256 KB (csvRows).
 * A file that is not (Shift_JIS, say, or a quote never closed) is refused whole rather than
 * imported up to the line, so nothing of it is half imported: the check reads the file once,
 * 0.1–0.5 s a million lines (63 MB), little beside the import of them.
 */
export async function checkImportFile(file: string, allowed: Format[]): Promise<void> {
  const format = formatOf(file, allowed)
  if (!existsSync(file)) throw new UsageError(`FILE: cannot read ${file}`)
  const problem = await firstProblem(file, format)
  if (problem) throw new UsageError(`${problem}: nothing was imported`)
}

/** Why `file` cannot be imported (`line N: …`), or null: the whole file is read. */
async function firstProblem(file: string, format: Format): Promise<string | null> {
  const lines = utf8Lines()
  const rows = format === 'csv' ? csvRows() : null
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK })) {
    const bad = lines.take(chunk as Buffer)
    if (bad) return notUtf8(bad)
    const problem = rows?.take(chunk as Buffer)
    if (problem) return problem
  }
  const bad = lines.end()
  if (bad) return notUtf8(bad)
  return rows?.end() ?? null
}

export async function openRecords(file: string, format: Format): Promise<RecordSource> {
  const info = await stat(file).catch(() => {
    throw new UsageError(`FILE: cannot read ${file}`)
  })
  // Read as bytes and decoded strictly: a file changed since checkImportFile, or not checked,
  // stops at its first line that is not UTF-8 rather than being read with U+FFFD.
  const bytes = createReadStream(file)
  // Bytes read from the file: the stream pauses while the parsed rows wait, so this stays near
  // what the importer has taken.
  return { size: info.size, ...readRecords(decodeUtf8(bytes), format, () => bytes.bytesRead) }
}

/** The records of `text`, a stream of strings (a file's, decoded), in `format`. */
export function readRecords(
  text: Readable,
  format: Format,
  bytesRead: () => number = () => 0,
): Omit<RecordSource, 'size'> {
  const header: ReadHeader = { header: null }
  return {
    bytesRead,
    columns: () => header.header?.names.filter((name) => name !== '') ?? null,
    header: () => header.header,
    records: format === 'csv' ? csvRecords(text, header) : ndjsonRecords(text),
  }
}

/**
 * A CSV file's header: its column names, trimmed and lower-cased ('' for a column without one),
 * and the line it is on.
 */
export type CsvHeader = { names: string[]; line: number }

/** Where a CSV reader puts the file's header once it has read it. */
export type ReadHeader = { header: CsvHeader | null }

/** Records handed over at once. */
export const RECORDS_AT_ONCE = 256
