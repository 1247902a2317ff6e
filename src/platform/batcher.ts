/**
 * Groups the work of concurrent callers: items that arrive while flushes are running wait and
 * go together in the next flush (one multi-row statement instead of one per caller). Up to
 * `concurrency` flushes run at once so a slow flush does not stall the pipe. Each caller gets
 * back the results for its own items.
 */
export function createBatcher<T, R>(
  flush: (items: T[]) => Promise<R[]>,
  opts: { maxBatch?: number; concurrency?: number } = {},
): { run(items: T[]): Promise<R[]>; drain(): Promise<void> } {
  const maxBatch = opts.maxBatch ?? 1_000
  const concurrency = opts.concurrency ?? 1
  type Pending = { items: T[]; resolve: (r: R[]) => void; reject: (e: unknown) => void }
  const waiting: Pending[] = []
  const running = new Set<Promise<void>>()
  let scheduled = false

  function takeBatch(): Pending[] {
    const batch: Pending[] = []
    let size = 0
    while (waiting.length > 0) {
      const next = waiting[0]!
      if (batch.length > 0 && size + next.items.length > maxBatch) break
      batch.push(next)
      size += next.items.length
      waiting.shift()
    }
    return batch
  }

  async function flushBatch(batch: Pending[]): Promise<void> {
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

  function pump(): void {
    scheduled = false
    while (waiting.length > 0 && running.size < concurrency) {
      const task = flushBatch(takeBatch()).finally(() => {
        running.delete(task)
        schedule()
      })
      running.add(task)
    }
  }

  /** Waits one turn of the event loop so that concurrent callers share a flush. */
  function schedule(): void {
    if (scheduled || waiting.length === 0 || running.size >= concurrency) return
    scheduled = true
    setImmediate(pump)
  }

  return {
    run(items) {
      if (items.length === 0) return Promise.resolve([])
      return new Promise<R[]>((resolve, reject) => {
        waiting.push({ items, resolve, reject })
        schedule()
      })
    },
    async drain() {
      while (running.size > 0 || waiting.length > 0) {
        if (running.size > 0) await Promise.all(running)
        else await new Promise((r) => setImmediate(r))
      }
    },
  }
}
