import type { Readable } from 'node:stream'
import { MAX_ORDER_BYTES } from '../../orders/order.schemas.ts'
import { RECORDS_AT_ONCE, type SourceRecord } from './read-records.ts'

/** The longest line read: as much as POST /api/orders takes for one order (its body limit). */
const MAX_LINE_BYTES = MAX_ORDER_BYTES

const TOO_LONG =
  '(row): longer than 256 KB, which POST /api/orders takes at most: is each object on a line of its own?'

/**
 * One JSON object per line (`\n`, or `\r\n`). A line longer than MAX_LINE_BYTES is reported and
 * skipped, and not kept while it is read (a file without newlines is not read into memory whole).
 * The text is read only as the records are taken.
 */
export async function* ndjsonRecords(text: Readable): AsyncGenerator<SourceRecord[]> {
  let line = 0
  let out: SourceRecord[] = []
  // The line read so far, from earlier chunks; null once it is too long.
  let pieces: string[] | null = []
  let length = 0
  const add = (piece: string) => {
    if (pieces === null) return
    length += piece.length
    pieces.push(piece)
    if (isTooLong(length, pieces)) pieces = null
  }
  const end = (last: string) => {
    line++
    add(last)
    const read = pieces?.join('')
    pieces = []
    length = 0
    if (read === undefined) out.push({ line, error: TOO_LONG })
    else recordOf(read, line, out)
  }
  try {
    for await (const chunk of text) {
      const part = chunk as string
      let start = 0
      for (let nl = part.indexOf('\n'); nl !== -1; nl = part.indexOf('\n', start)) {
        end(part.slice(start, nl))
        start = nl + 1
        if (out.length >= RECORDS_AT_ONCE) {
          yield out
          out = []
        }
      }
      if (start < part.length) add(part.slice(start))
    }
    if (length > 0 || pieces === null) end('')
    if (out.length > 0) yield out
  } finally {
    text.destroy()
  }
}

/** Whether text of `length` characters (UTF-16 units, each 1 to 3 UTF-8 bytes) is too long. */
function isTooLong(length: number, pieces: string[]): boolean {
  if (length * 3 <= MAX_LINE_BYTES) return false
  if (length > MAX_LINE_BYTES) return true
  let bytes = 0
  for (const piece of pieces) bytes += Buffer.byteLength(piece)
  return bytes > MAX_LINE_BYTES
}

/** The object on one line, or why it is not one; a blank line is none. */
function recordOf(read: string, line: number, out: SourceRecord[]): void {
  // A byte-order mark (Windows tools write one) is not part of the first object.
  const text = line === 1 ? read.replace(/^\uFEFF/, '') : read
  if (text.trim() === '') return
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
