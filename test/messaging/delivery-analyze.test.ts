import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { closeDeps, createDeps } from '../../src/main/deps.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { makeCustomer } from '../purchases/fixtures.ts'
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env.ts'
import { eventually } from '../support/wait.ts'

// No worker: the queue is this test's own and is removed afterwards.
let deps: Deps
beforeAll(async () => {
  const env = loadEnv({
    DATABASE_URL: TEST_DATABASE_URL,
    REDIS_URL: TEST_REDIS_URL,
    LINE_CHANNEL_SECRET: 'analyze-test',
    LINE_CHANNEL_ACCESS_TOKEN: 'analyze-test',
  })
  deps = await createDeps(env, { log: createLogger('silent'), queuePrefix: `test-${randomUUID()}` })
})
afterAll(async () => {
  await deps.queues.byName.delivery.obliterate({ force: true })
  await closeDeps(deps)
})

/** When `delivery` was last analyzed by hand (autovacuum's analyses are counted apart). */
async function lastAnalyze(): Promise<number> {
  const { rows } = await sql<{ at: Date | null }>`
    select last_analyze as at from pg_stat_user_tables where relname = 'delivery'`.execute(deps.db)
  return rows[0]?.at?.getTime() ?? 0
}

describe('scheduling a big campaign', () => {
  it('refreshes the planner statistics of delivery before the sends are planned', async () => {
    const before = await lastAnalyze()
    const customer = await makeCustomer(deps.db)
    const tag = randomUUID()
    const ids = await scheduleDeliveries(
      deps,
      Array.from({ length: 5_000 }, (_, i) => ({
        dedupeKey: `analyze-test:${tag}:${i}`,
        kind: 'campaign',
        category: 'marketing' as const,
        customerId: customer.id,
        content: { templateId: 'campaign-sample' },
      })),
    )
    expect(ids).toHaveLength(5_000)
    // Statistics reach pg_stat_user_tables shortly after the statement, not within it.
    await eventually(async () => expect(await lastAnalyze()).toBeGreaterThan(before))
  })
})
