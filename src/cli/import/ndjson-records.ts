import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { RECORDS_AT_ONCE, type SourceRecord } from './read-records.ts'

export async function* ndjsonRecords(stream: Readable): AsyncGenerator<SourceRecord[]> {
  let line = 0
  let out: SourceRecord[] = []
  try {
    for await (const read of createInterface({ input: stream, crlfDelay: Infinity })) {
      line++
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
