/**
 * Groups the work of concurrent callers: items that arrive while flushes are running wait and
 * go together in the next flush (one multi-row statement instead of one per caller). Up to
 * `concurrency` flushes run at once so a slow flush does not stall the pipe. Each caller gets
 * back the results for its own items. With `lingerMs`, a flush waits that long for company
 * (for work nobody waits on, such as enqueueing after the reply: fewer, larger round trips).
 */
export function createBatcher<T, R>(
  flush: (items: T[]) => Promise<R[]>,
  opts: { maxBatch?: number; concurrency?: number; lingerMs?: number } = {},
): { run(items: T[]): Promise<R[]>; drain(): Promise<void> } {
  const maxBatch = opts.maxBatch ?? 1_000
  const concurrency = opts.concurrency ?? 1
  const lingerMs = opts.lingerMs ?? 0
  type Pending = { items: T[]; resolve: (r: R[]) => void; reject: (e: unknown) => void }
  const waiting: Pending[] = []
  const running = new Set<Promise<void>>()
  let scheduled = false

  function takeBatch(): Pending[] {
    let count = 0
    let size = 0
    while (count < waiting.length) {
      const next = waiting[count]!
      if (count > 0 && size + next.items.length > maxBatch) break
      size += next.items.length
      count += 1
    }
    return waiting.splice(0, count)
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
    if (lingerMs > 0) setTimeout(pump, lingerMs)
    else setImmediate(pump)
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
