import { UsageError } from '../with-db.ts'
import type { CsvHeader } from './read-records.ts'

/**
 * A CSV file's header, checked once for the whole file (RecordSource.header()): an unknown
 * column (a typo such as "e-mail") refuses the file before anything is written, rather than
 * refusing every row, or skipping what it held. No name is echoed that may be a row's value (a
 * file without a header has its first row read as one): a first line naming no column at all is
 * said not to be a header, and an unknown name with an @ or mostly digits is given by position.
 * A column named twice (names are read in any case: `email,Email`) refuses the file too. True
 * once there was a header to check.
 */
export function checkColumns(header: CsvHeader | null, known: ReadonlySet<string>): boolean {
  if (!header) return false
  const { names, line } = header
  const columns = `the columns are ${[...known].join(', ')}`
  if (!names.some((name) => known.has(name))) {
    throw new UsageError(
      `FILE: line ${line} is not a header (none of its cells names a column); ${columns}`,
    )
  }
  const unknown = names.flatMap((name, i) => (name === '' || known.has(name) ? [] : [i]))
  if (unknown.length > 0) {
    const named = unknown.filter((i) => looksLikeName(names[i] as string))
    const data = unknown.filter((i) => !named.includes(i))
    const problems = [
      ...(named.length > 0
        ? [`unknown column ${named.map((i) => `"${names[i]}"`).join(', ')}`]
        : []),
      ...(data.length > 0
        ? [
            `${data.length > 1 ? 'columns' : 'column'} ${data.map((i) => i + 1).join(', ')} ` +
              `${data.length > 1 ? 'are' : 'is'} named like data, not columns (` +
              `${data.length > 1 ? 'their names are' : 'its name is'} not shown)`,
          ]
        : []),
    ]
    throw new UsageError(`FILE: ${problems.join('; ')}; ${columns}`)
  }
  // Read by name, a row would keep one of the two cells: which one the file meant is unknown.
  for (const name of known) {
    const at = names.flatMap((n, i) => (n === name ? [i + 1] : []))
    if (at.length > 1) {
      const times = at.length === 2 ? 'twice' : `${at.length} times`
      const positions = `${at.slice(0, -1).join(', ')} and ${at.at(-1)}`
      throw new UsageError(`FILE: column "${name}" appears ${times} (columns ${positions})`)
    }
  }
  return true
}

/** A name that may be echoed: no email address, nor a number (a phone, a card), and short. */
function looksLikeName(name: string): boolean {
  const digits = name.replaceAll(/\D/g, '').length
  return name.length <= 40 && !name.includes('@') && digits * 2 < name.length
}
