import { expect, vi } from 'vitest'
import type { Database } from '../../src/platform/db.ts'

/** Waits until `check` stops throwing (the worker finished); fails with its last error. */
export function eventually<T>(check: () => Promise<T> | T, timeout = 15_000): Promise<T> {
  return vi.waitFor(check, { timeout, interval: 50 })
}

/** Waits until the worker has processed (`done`) the stored webhook event. */
export function eventuallyProcessed(
  db: Database,
  webhookEventId: string,
  timeout?: number,
): Promise<void> {
  return eventually(async () => {
    const row = await db
      .selectFrom('webhook_event')
      .select('status')
      .where('webhook_event_id', '=', webhookEventId)
      .executeTakeFirst()
    expect(row?.status).toBe('done')
  }, timeout)
}
