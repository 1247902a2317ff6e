/**
 * Groups the work of concurrent callers into one call per tick: while one flush runs, new
 * items wait and go together in the next. Each caller gets back the result for its own items.
 */
export function createBatcher<T, R>(
  flush: (items: T[]) => Promise<R[]>,
  opts: { maxBatch?: number } = {},
): { run(items: T[]): Promise<R[]>; drain(): Promise<void> } {
  const maxBatch = opts.maxBatch ?? 1_000
  type Pending = { items: T[]; resolve: (r: R[]) => void; reject: (e: unknown) => void }
  const waiting: Pending[] = []
  let running: Promise<void> | null = null

  async function flushWaiting(): Promise<void> {
    while (waiting.length > 0) {
      const batch: Pending[] = []
      let size = 0
      while (
        waiting.length > 0 &&
        (batch.length === 0 || size + waiting[0]!.items.length <= maxBatch)
      ) {
        const next = waiting.shift()!
        batch.push(next)
        size += next.items.length
      }
      try {
        const results = await flush(batch.flatMap((p) => p.items))
        let offset = 0
        for (const p of batch) {
          p.resolve(results.slice(offset, offset + p.items.length))
          offset += p.items.length
        }
      } catch (error) {
        for (const p of batch) p.reject(error)
      }
    }
  }

  function kick(): void {
    if (running) return
    running = new Promise<void>((resolve) => setImmediate(resolve))
      .then(flushWaiting)
      .finally(() => {
        running = null
        if (waiting.length > 0) kick()
      })
  }

  return {
    run(items) {
      if (items.length === 0) return Promise.resolve([])
      return new Promise<R[]>((resolve, reject) => {
        waiting.push({ items, resolve, reject })
        kick()
      })
    },
    async drain() {
      while (running) await running
    },
  }
}
