import { SingleBar } from 'cli-progress'

export type Tally = Record<string, number>

/** A progress bar on stderr (only on a terminal) over the bytes of the input file. */
export function startProgress(size: number, bytesRead: () => number) {
  const bar = process.stderr.isTTY
    ? new SingleBar({
        stream: process.stderr,
        format: 'importing |{bar}| {percentage}% | {rows} rows | ETA {eta_formatted}',
        hideCursor: true,
        clearOnComplete: true,
      })
    : null
  bar?.start(Math.max(size, 1), 0, { rows: 0 })
  let rows = 0
  return {
    tick(n = 1) {
      rows += n
      bar?.update(Math.min(bytesRead(), size), { rows })
    },
    stop() {
      bar?.update(size, { rows })
      bar?.stop()
    },
  }
}

/** A bad input row, reported on stderr by line and field; no values are echoed. */
export function reportBadRow(line: number, message: string): void {
  console.error(`line ${line}: ${message}`)
}

export function summary(tally: Tally): string {
  return Object.entries(tally)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
}
