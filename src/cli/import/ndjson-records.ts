import type { Readable } from 'node:stream'
import { MAX_ORDER_BYTES } from '../../orders/order.schemas.ts'
import { RECORDS_AT_ONCE, type SourceRecord } from './read-records.ts'

const LF = 0x0a

/** The longest line read: as much as POST /api/orders takes for one order (its body limit). */
const MAX_LINE_BYTES = MAX_ORDER_BYTES

const TOO_LONG =
  `(row): longer than ${MAX_LINE_BYTES / 1024} KB, which POST /api/orders takes at most: ` +
  'is each object on a line of its own?'

/**
 * One JSON object per line: a line ends at `\n`, `\r\n` or a lone `\r` (old Mac files). A line
 * longer than MAX_LINE_BYTES is reported and skipped, and not kept while it is read (a file
 * without newlines is not read into memory whole). The text is read only as the records are taken.
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
    // The last chunk ended in \r: a \n opening this one is the same line end.
    let afterCr = false
    for await (const chunk of text) {
      const part = chunk as string
      if (part.length === 0) continue
      let start = afterCr && part.charCodeAt(0) === LF ? 1 : 0
      afterCr = false
      // The next \n and \r from `start` (-1: none), each looked for again once passed.
      let nl = part.indexOf('\n', start)
      let cr = part.indexOf('\r', start)
      while (nl !== -1 || cr !== -1) {
        const at = cr === -1 || (nl !== -1 && nl < cr) ? nl : cr
        end(part.slice(start, at))
        start = at + 1
        if (at === cr) {
          if (start === part.length) afterCr = true
          else if (part.charCodeAt(start) === LF) start++
          cr = part.indexOf('\r', start)
        }
        if (nl !== -1 && nl < start) nl = part.indexOf('\n', start)
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
