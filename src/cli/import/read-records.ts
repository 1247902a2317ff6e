import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { extname } from 'node:path'
import { createInterface } from 'node:readline'
import { parse } from 'csv-parse'
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
  records: AsyncGenerator<SourceRecord>
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
  const stream = createReadStream(file)
  // Bytes the parser has consumed (the stream itself reads ahead).
  const done = { bytes: 0 }
  return {
    size: info.size,
    bytesRead: () => done.bytes,
    records: format === 'csv' ? csvRecords(stream, done) : ndjsonRecords(stream, done),
  }
}

async function* csvRecords(
  stream: NodeJS.ReadableStream,
  done: { bytes: number },
): AsyncGenerator<SourceRecord> {
  const skipped: SourceRecord[] = []
  const parser = stream.pipe(
    parse({
      bom: true,
      columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()),
      skip_empty_lines: true,
      trim: true,
      info: true,
      skip_records_with_error: true,
      on_skip: (err) => {
        const line = (err as { lines?: number } | undefined)?.lines ?? 0
        skipped.push({ line, error: `(row): ${err?.message ?? 'unreadable CSV row'}` })
        return undefined
      },
    }),
  )
  for await (const item of parser as AsyncIterable<{
    record: Record<string, string>
    info: { lines: number; bytes: number }
  }>) {
    done.bytes = item.info.bytes
    yield* skipped.splice(0)
    // Empty cells mean "not given".
    const record = Object.fromEntries(Object.entries(item.record).filter(([, v]) => v !== ''))
    yield { line: item.info.lines, record }
  }
  yield* skipped.splice(0)
}

async function* ndjsonRecords(
  stream: NodeJS.ReadableStream,
  done: { bytes: number },
): AsyncGenerator<SourceRecord> {
  let line = 0
  for await (const text of createInterface({ input: stream, crlfDelay: Infinity })) {
    line++
    done.bytes += Buffer.byteLength(text) + 1
    if (text.trim() === '') continue
    try {
      const value: unknown = JSON.parse(text)
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        yield { line, error: '(row): each line must be one JSON object' }
      } else {
        yield { line, record: value as Record<string, unknown> }
      }
    } catch {
      yield { line, error: '(row): not valid JSON' }
    }
  }
}
