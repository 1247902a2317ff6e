import { Writable } from 'node:stream'

/** A destination for `createLogger(level, sink)` that keeps every line, for tests to read. */
export function logSink() {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk))
      done()
    },
  })
  return {
    sink,
    lines,
    entries: (): Record<string, unknown>[] => lines.map((l) => JSON.parse(l)),
  }
}
