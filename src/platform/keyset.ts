import { type RawBuilder, sql } from 'kysely'

/**
 * A row read by (time, id) order, as the key of the next page: `at` is the time as Postgres
 * wrote it (its text), since a Date would lose the microseconds and the next page would begin
 * inside the one before.
 */
export type Keyset = { at: string; id: string }

/**
 * The rows after `after` in (`time`, id) order (all rows for the first page); `time` a column's
 * name or an expression.
 */
export function afterKeyset(time: string | RawBuilder<Date>, after: Keyset | undefined) {
  if (!after) return sql<boolean>`true`
  const at = typeof time === 'string' ? sql.ref(time) : time
  return sql<boolean>`(${at}, id) > (${after.at}::timestamptz, ${after.id}::uuid)`
}

/**
 * Reads rows a page at a time, each page after the last row of the one before (keyset
 * pagination: no row read twice, each page a range of an index), until a short page or `max`
 * rows in all.
 */
export async function readByKeyset<R extends Keyset>(
  readPage: (after: Keyset | undefined, limit: number) => Promise<R[]>,
  opts: { page: number; max: number },
): Promise<R[]> {
  const rows: R[] = []
  let after: Keyset | undefined
  while (rows.length < opts.max) {
    const limit = Math.min(opts.page, opts.max - rows.length)
    const page = await readPage(after, limit)
    rows.push(...page)
    if (page.length < limit) break
    after = page.at(-1)
  }
  return rows
}
