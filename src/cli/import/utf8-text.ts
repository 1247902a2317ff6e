import { isUtf8 } from 'node:buffer'
import { pipeline, type Readable, Transform } from 'node:stream'

const NEWLINE = 0x0a

/** Why an import stops at `line`: its bytes are not UTF-8 (Shift_JIS, most likely, in Japan). */
export function notUtf8(line: number): string {
  return `line ${line}: not UTF-8 text; save the file as UTF-8 (it may be Shift_JIS) and import it again`
}

/**
 * Follows a file's bytes, chunk by chunk: `take` and `end` answer the number (1-based) of the
 * first line that is not UTF-8 text, or 0 while all is. A newline byte is never part of a UTF-8
 * character, so each line is checked whole, a character cut between two chunks too: the lines
 * inside a chunk at once (isUtf8), those across a cut by a streaming strict decoder.
 */
export function utf8Lines() {
  let line = 1
  // The line begun in an earlier chunk.
  let open = new TextDecoder('utf-8', { fatal: true })
  const carry = (bytes: Buffer) => {
    try {
      open.decode(bytes, { stream: true })
      return true
    } catch {
      return false
    }
  }
  const close = () => {
    try {
      open.decode()
      return true
    } catch {
      return false
    } finally {
      open = new TextDecoder('utf-8', { fatal: true })
    }
  }
  return {
    take(chunk: Buffer): number {
      const first = chunk.indexOf(NEWLINE)
      if (first === -1) return carry(chunk) ? 0 : line
      if (!carry(chunk.subarray(0, first)) || !close()) return line
      line++
      const last = chunk.lastIndexOf(NEWLINE)
      if (last > first) {
        // Whole lines, each ending in its newline.
        const lines = chunk.subarray(first + 1, last + 1)
        if (!isUtf8(lines)) return line + firstBadLine(lines)
        line += newlinesIn(lines)
      }
      return carry(chunk.subarray(last + 1)) ? 0 : line
    },
    end(): number {
      return close() ? 0 : line
    },
  }
}

/** Of whole lines (each ending in a newline) not all UTF-8: how many come before the bad one. */
function firstBadLine(lines: Buffer): number {
  let n = 0
  for (let start = 0; start < lines.length; n++) {
    const end = lines.indexOf(NEWLINE, start)
    if (!isUtf8(lines.subarray(start, end))) return n
    start = end + 1
  }
  return n
}

function newlinesIn(bytes: Buffer): number {
  let n = 0
  for (let i = bytes.indexOf(NEWLINE); i !== -1; i = bytes.indexOf(NEWLINE, i + 1)) n++
  return n
}

/**
 * A file's bytes as text (string chunks), strictly: at the first line that is not UTF-8 the
 * stream fails (notUtf8) rather than reading U+FFFD in its place. Destroying it closes the file.
 */
export function decodeUtf8(bytes: Readable): Readable {
  const lines = utf8Lines()
  // Given only bytes checked whole: it never replaces one, and keeps a cut character for later.
  const decoder = new TextDecoder('utf-8')
  const text = new Transform({
    readableObjectMode: true,
    transform(chunk: Buffer, _encoding, done) {
      const bad = lines.take(chunk)
      if (bad) done(new Error(notUtf8(bad)))
      else done(null, nonEmpty(decoder.decode(chunk, { stream: true })))
    },
    flush(done) {
      const bad = lines.end()
      if (bad) done(new Error(notUtf8(bad)))
      else done(null, nonEmpty(decoder.decode()))
    },
  })
  // The error reaches whoever reads `text` (its 'error'); pipeline also closes the file with it.
  return pipeline(bytes, text, () => {})
}

/** Text to pass on: an empty string, as an object of the stream, would be one more chunk. */
const nonEmpty = (text: string) => (text === '' ? undefined : text)
