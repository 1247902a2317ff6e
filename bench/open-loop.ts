/** Open-loop load: requests start on a fixed schedule whether or not earlier ones finished. */

export type OpenLoopResult = {
  sent: number
  ok: number
  errors: number
  /** Completed requests per second over the run (first start to last completion). */
  rate: number
  p50: number
  p90: number
  p99: number
  max: number
  /** The first failure, to show what went wrong. */
  firstError?: string
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)
  return sorted[Math.max(0, index)] ?? Number.NaN
}

const round = (ms: number) => Number(ms.toFixed(2))

/**
 * Starts `send(i)` at `rate` per second for `seconds`. Each latency runs from the request's
 * scheduled start, so time spent waiting behind a late timer or a slow server is counted.
 */
export async function openLoop(
  rate: number,
  seconds: number,
  send: (i: number) => Promise<void>,
): Promise<OpenLoopResult> {
  const total = Math.round(rate * seconds)
  const latencies: number[] = []
  const inflight = new Set<Promise<void>>()
  let errors = 0
  let firstError: string | undefined
  let lastDone = 0
  const start = performance.now()
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1)
    for (; sent < due; sent++) {
      const scheduled = start + (sent * 1000) / rate
      const p = send(sent).then(
        () => {
          lastDone = performance.now()
          latencies.push(lastDone - scheduled)
        },
        (error: unknown) => {
          lastDone = performance.now()
          errors++
          firstError ??= error instanceof Error ? error.message : String(error)
        },
      )
      inflight.add(p)
      void p.finally(() => inflight.delete(p))
    }
    const next = start + (sent * 1000) / rate
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())))
  }
  await Promise.all(inflight)
  latencies.sort((a, b) => a - b)
  return {
    sent,
    ok: latencies.length,
    errors,
    rate: Number((latencies.length / ((lastDone - start) / 1000)).toFixed(1)),
    p50: round(percentile(latencies, 50)),
    p90: round(percentile(latencies, 90)),
    p99: round(percentile(latencies, 99)),
    max: round(latencies.at(-1) ?? Number.NaN),
    firstError,
  }
}
