import { reportBadRow } from './progress.ts'

type Held<K> = { line: number; message: string | undefined; count: K | undefined }

/**
 * The bad rows of an import that reads on while it writes: each report (stderr) and count is
 * held until the orders before its line are written (`release`), then given in line order. An
 * import that stops at line N (`stop`) has so reported and counted only the lines before N; the
 * lines after are read again by the next run.
 */
export function holdReports<K extends string>(tally: Record<K, number>) {
  let held: Held<K>[] = []
  let stopped = Number.POSITIVE_INFINITY
  const release = (before: number) => {
    const ready = held.filter((h) => h.line < before)
    if (ready.length === 0) return
    held = held.filter((h) => h.line >= before)
    ready.sort((a, b) => a.line - b.line)
    for (const { line, message, count } of ready) {
      if (message !== undefined) reportBadRow(line, message)
      if (count !== undefined) tally[count]++
    }
  }
  return {
    /** A report and/or a count for `line`, given once the orders before it are written. */
    add(line: number, message: string | undefined, count?: K) {
      if (line < stopped) held.push({ line, message, count })
    },
    /** Gives what is held for the lines before `before`. */
    release,
    /** The import stopped at `line`: what is held before it is given, nothing from it on ever. */
    stop(line: number) {
      release(line)
      held = []
      stopped = line
    },
    get size() {
      return held.length
    },
  }
}
