import { CompiledQuery } from 'kysely'
import type { Db } from './db.ts'

/**
 * Statements whose text starts with this comment are `copy … from stdin`, and their one
 * parameter is the data (COPY text format). The pool's client (PreparingClient) streams it with
 * pg-copy-streams; the embedded PGlite dialect hands it over as a blob. Through Kysely, so a
 * COPY runs on the transaction's own connection.
 */
export const COPY_FROM_STDIN = '/*copy-from-stdin*/ '

/**
 * Runs `copy table (columns) from stdin` with `data` (rows built with copyRow) on `db`'s
 * connection; returns the rows copied. Bulk writes only: COPY has no `on conflict`, so the
 * caller knows the rows are new (and a unique violation fails the whole statement).
 */
export async function copyFromStdin(db: Db, statement: string, data: string): Promise<number> {
  if (!/^copy\s[^;]*\sfrom\s+stdin$/i.test(statement)) {
    throw new Error('copyFromStdin: the statement must be `copy … from stdin`')
  }
  if (data === '') return 0
  const result = await db.executeQuery(CompiledQuery.raw(COPY_FROM_STDIN + statement, [data]))
  return Number(result.numAffectedRows ?? 0)
}

/** A value of a COPY text row: null, a number, a string, or an array of these (one level). */
export type CopyValue = string | number | null | readonly (string | number | null)[]

/** One row in COPY's text format: tab between values, `\N` for null, newline at the end. */
export function copyRow(values: readonly CopyValue[]): string {
  let row = ''
  for (let i = 0; i < values.length; i++) {
    if (i > 0) row += '\t'
    const value = values[i] ?? null
    if (value === null) row += '\\N'
    else if (typeof value === 'number') row += String(value)
    else if (typeof value === 'string') row += copyText(value)
    else row += copyText(arrayLiteral(value))
  }
  return `${row}\n`
}

const COPY_SPECIAL = /[\\\t\n\r]/

/** Backslash, tab, newline and carriage return escaped as COPY's text format wants them. */
function copyText(text: string): string {
  if (!COPY_SPECIAL.test(text)) return text
  return text.replace(/[\\\t\n\r]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
  )
}

const ARRAY_SPECIAL = /[{}",\\\s]/

/** `{a,"b c",NULL}`: a Postgres array literal; an element is quoted when it has to be. */
function arrayLiteral(items: readonly (string | number | null)[]): string {
  let out = '{'
  for (let i = 0; i < items.length; i++) {
    if (i > 0) out += ','
    const item = items[i] ?? null
    if (item === null) out += 'NULL'
    else if (typeof item === 'number') out += String(item)
    else if (
      item === '' ||
      ARRAY_SPECIAL.test(item) ||
      (item.length === 4 && item.toUpperCase() === 'NULL')
    ) {
      out += `"${item.includes('"') || item.includes('\\') ? item.replace(/["\\]/g, '\\$&') : item}"`
    } else out += item
  }
  return `${out}}`
}
