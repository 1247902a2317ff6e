import { MAX_ORDER_BYTES } from '../../orders/order.schemas.ts'

/** The longest CSV row: as long as an NDJSON line may be (what POST /api/orders takes). */
export const MAX_ROW_BYTES = MAX_ORDER_BYTES

const KB = MAX_ROW_BYTES / 1024

const QUOTE = 0x22
const COMMA = 0x2c
const LF = 0x0a
const CR = 0x0d
const BOM = [0xef, 0xbb, 0xbf]

// Where the bytes read so far leave a row: at a field's start; in a field not quoted; in a
// quoted one; just after a quote in it (an escaped quote, its end or a stray quote, as the next
// byte says); in whitespace after such a quote; in a character of several bytes after it.
const FIELD = 0
const PLAIN = 1
const QUOTED = 2
const QUOTE_SEEN = 3
const SPACES = 4
const WIDE = 5

/** What to do about a quote never closed, and about a stray one (csvRecords says so too). */
export const CLOSE_IT = 'close it (a quote inside a cell is written "")'
export const STRAY = 'a quoted cell on this line has text after its closing quote ("a" b)'
export const STRAY_FIX = 'put the whole cell in quotes, a quote inside it written ""'

/**
 * Follows a CSV file's bytes, chunk by chunk, as papaparse reads its quotes (csvRecords): a
 * field is quoted when a quote is its first character; its quote ends it when followed by a
 * comma, a line end or the file's end (whitespace between allowed), a doubled quote is one
 * quote, and any other quote is text of the cell (a stray quote: `"Taro" Yamada` reads on to the
 * next quote that ends a cell). `take` and `end` answer why the file cannot be read as rows
 * (`line N: …`), or null while it can: a quote never closed (papaparse would read the file to
 * its end into one cell, re-reading that cell for every chunk it adds, time and memory growing
 * with its square), a stray quote that takes in the line ends after it, or a row longer than
 * MAX_ROW_BYTES. A tight loop over the bytes: the check runs before every import.
 */
export function csvRows() {
  let state = FIELD
  let line = 1
  /** Bytes before the chunk taken, and the last byte taken. */
  let offset = 0
  let lastByte = -1
  /** Where the row being read starts (a byte offset), and its line. */
  let rowStart = 0
  let rowLine = 1
  /** The line of the open quoted cell's quote, and of its first stray quote (0: none). */
  let quoteLine = 0
  let strayLine = 0
  /** A character of several bytes after a quote in a quoted cell, as far as read. */
  let wide: number[] = []
  /** Bytes of a byte-order mark read at the file's start (-1: past it). */
  let bom = 0

  const inQuotes = () =>
    state === QUOTED || state === QUOTE_SEEN || state === SPACES || state === WIDE
  const stray = () => {
    if (strayLine === 0) strayLine = line
  }
  const longRow = () =>
    `line ${rowLine}: a row longer than ${KB} KB, the most a row may hold: is it CSV, a row on ` +
    'each line?'
  /** The row read so far is too long: why, the quote it is in named first. */
  const tooLong = () => {
    if (!inQuotes()) return longRow()
    if (strayLine === 0) {
      return (
        `line ${quoteLine}: the quote that opens a cell on this line is not closed within ` +
        `${KB} KB (line ${line}), the most a row may hold: ${CLOSE_IT}`
      )
    }
    return (
      `line ${quoteLine}: ${STRAY}, so the lines after it, past ${KB} KB (line ${line}), would ` +
      `be read as that cell: ${STRAY_FIX}`
    )
  }
  /** The quoted cell ends here: why it cannot, when a stray quote in it took in a line end. */
  const closed = (): string | null =>
    strayLine !== 0 && line > strayLine
      ? `line ${quoteLine}: ${STRAY}, so lines ${quoteLine}–${line} would be read as that one ` +
        `cell: ${STRAY_FIX}`
      : null
  /** A row ends at `at` (its line end; the next row starts on `nextLine`): too long? */
  const rowEnds = (at: number, nextLine: number): string | null => {
    const problem = at - rowStart > MAX_ROW_BYTES ? longRow() : null
    rowStart = at + 1
    rowLine = nextLine
    return problem
  }

  /** Byte `b` (at `at`) after a quote in a quoted cell, and whitespace after it. */
  const afterQuote = (b: number, at: number): string | null => {
    if (state === WIDE) {
      if (b >= 0x80) {
        wide.push(b)
        if (wide.length < utf8Length(wide[0] as number)) return null
        if (isWhitespace(wide)) {
          state = SPACES
          return null
        }
      }
    } else if (b === COMMA || b === LF || b === CR) {
      const problem = closed() ?? (b === COMMA ? null : rowEnds(at, b === LF ? line + 1 : line))
      state = FIELD
      return problem
    } else if (b === 0x20 || b === 0x09 || b === 0x0b || b === 0x0c) {
      state = SPACES
      return null
    } else if (b >= 0x80) {
      wide = [b]
      state = WIDE
      return null
    }
    // Text after the quote: it was a stray one, and the cell goes on (this may be its end).
    stray()
    state = b === QUOTE ? QUOTE_SEEN : QUOTED
    return null
  }

  return {
    take(chunk: Buffer): string | null {
      const n = chunk.length
      let i = 0
      // papaparse drops a byte-order mark: a quote after it opens the first cell.
      while (bom !== -1 && i < n) {
        if (chunk[i] === BOM[bom]) {
          i++
          if (++bom === BOM.length) bom = -1
        } else {
          // Not one: the bytes read as one were the first cell's text.
          if (bom > 0) state = PLAIN
          bom = -1
        }
      }
      // The state and line in locals while the bytes are read (a closure's cost more a byte).
      let at = state
      let ln = line
      for (; i < n; i++) {
        const b = chunk[i] as number
        // Most bytes: text of a cell (every byte that means something is at most a comma).
        if (b > COMMA && at <= QUOTED) {
          if (at === FIELD) at = PLAIN
          continue
        }
        if (at === FIELD) {
          if (b === QUOTE) {
            at = QUOTED
            quoteLine = ln
            strayLine = 0
            continue
          }
          at = PLAIN
        }
        if (at === PLAIN) {
          if (b === COMMA) at = FIELD
          else if (b === LF || b === CR) {
            at = FIELD
            const problem = rowEnds(offset + i, b === LF ? ln + 1 : ln)
            if (problem) return problem
          }
        } else if (at === QUOTED) {
          if (b === QUOTE) at = QUOTE_SEEN
        } else if (at === QUOTE_SEEN && b === QUOTE) {
          at = QUOTED
        } else {
          state = at
          line = ln
          const problem = afterQuote(b, offset + i)
          if (problem) return problem
          at = state
        }
        if (b === LF) ln++
      }
      state = at
      line = ln
      offset += n
      if (n > 0) lastByte = chunk[n - 1] as number
      return offset - rowStart > MAX_ROW_BYTES ? tooLong() : null
    },
    end(): string | null {
      // A quote that is the file's last byte ends its cell.
      if (state === QUOTE_SEEN) return closed()
      if (!inQuotes()) return null
      const last = `the file to its end (line ${lastByte === LF ? line - 1 : line})`
      // Whitespace after the quote, then the file's end, does not end it (papaparse).
      if (state === QUOTED && strayLine === 0) {
        return (
          `line ${quoteLine}: the quote that opens a cell on this line is never closed, so ` +
          `${last} would be read as that cell: ${CLOSE_IT}`
        )
      }
      return `line ${quoteLine}: ${STRAY}, so ${last} would be read as that cell: ${STRAY_FIX}`
    },
  }
}

/** The bytes of the UTF-8 character `lead` starts. */
function utf8Length(lead: number): number {
  return lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2
}

/** Whether a character of several bytes is whitespace to String.trim (U+3000, U+00A0, …). */
function isWhitespace(bytes: number[]): boolean {
  return /^\s$/u.test(Buffer.from(bytes).toString('utf8'))
}
