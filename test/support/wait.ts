import { vi } from 'vitest'

/** Waits until `check` stops throwing (the worker finished); fails with its last error. */
export function eventually<T>(check: () => Promise<T> | T, timeout = 15_000): Promise<T> {
  return vi.waitFor(check, { timeout, interval: 50 })
}
