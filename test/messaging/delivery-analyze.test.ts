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

/**
 * More deliveries than one statement can carry: Postgres takes at most 65,535 parameters per
 * statement, and a delivery row had 11 or 12 (6,000 rows: "bind message has 464 parameter
 * formats but 0 parameters", the whole batch refused).
 */
describe('scheduling a batch of more than 6,000 deliveries', () => {
  const COUNT = 6_500

  function intents(tag: string, customerId: (i: number) => string) {
    return Array.from({ length: COUNT }, (_, i) => ({
      dedupeKey: `big-batch-test:${tag}:${i}`,
      kind: 'campaign',
      category: 'marketing' as const,
      customerId: customerId(i),
      content: { templateId: 'campaign-sample', vars: { n: i } },
      // Some later (a delayed job each group), the rest due now.
      ...(i % 10 === 0 ? { sendAfter: new Date(Date.now() + 3_600_000) } : {}),
    }))
  }

  async function writtenIds(tag: string): Promise<string[]> {
    const rows = await deps.db
      .selectFrom('delivery')
      .select('id')
      .where('dedupe_key', 'like', `big-batch-test:${tag}:%`)
      .execute()
    return rows.map((r) => r.id).sort()
  }

  /** Every queued delivery id among `ids`, once per job naming it. */
  async function queuedIds(ids: string[]): Promise<string[]> {
    const wanted = new Set(ids)
    const jobs = await deps.queues.byName.delivery.getJobs(['waiting', 'delayed', 'prioritized'])
    for (const job of jobs) expect(job.data.deliveryIds.length).toBeLessThanOrEqual(100)
    return jobs
      .flatMap((job) => job.data.deliveryIds as string[])
      .filter((id) => wanted.has(id))
      .sort()
  }

  it('writes and queues every delivery once; running it again writes and queues nothing', async () => {
    const customer = await makeCustomer(deps.db)
    const tag = randomUUID()
    const batch = intents(tag, () => customer.id)

    const ids = await scheduleDeliveries(deps, batch)

    expect(new Set(ids).size).toBe(COUNT)
    expect(await writtenIds(tag)).toEqual([...ids].sort())
    expect(await queuedIds(ids)).toEqual([...ids].sort())
    const later = await deps.db
      .selectFrom('delivery')
      .select(({ fn }) => fn.countAll<string>().as('n'))
      .where('dedupe_key', 'like', `big-batch-test:${tag}:%`)
      .where('send_after', '>', new Date(Date.now() + 1_800_000))
      .executeTakeFirstOrThrow()
    expect(Number(later.n)).toBe(COUNT / 10)

    expect(await scheduleDeliveries(deps, batch)).toEqual([])
    expect(await writtenIds(tag)).toHaveLength(COUNT)
    expect(await queuedIds(ids)).toEqual([...ids].sort())
  })

  // Written in parts, each committed and queued before the next: a part that fails (here a
  // delivery naming no customer) leaves the parts before it written and queued, and the caller
  // runs the batch again: the dedupe keys write and queue only the rest.
  it('a part that fails leaves the parts before it queued; running the batch again adds the rest once', async () => {
    const customer = await makeCustomer(deps.db)
    const tag = randomUUID()
    const BAD = COUNT - 100
    const broken = intents(tag, (i) => (i === BAD ? randomUUID() : customer.id))

    await expect(scheduleDeliveries(deps, broken)).rejects.toThrow(/foreign key/)
    const before = await writtenIds(tag)
    expect(before.length).toBeGreaterThan(0)
    expect(before.length).toBeLessThan(BAD)
    expect(await queuedIds(before)).toEqual(before)

    const rest = await scheduleDeliveries(
      deps,
      intents(tag, () => customer.id),
    )

    expect(rest).toHaveLength(COUNT - before.length)
    const all = await writtenIds(tag)
    expect(all).toHaveLength(COUNT)
    expect([...before, ...rest].sort()).toEqual(all)
    expect(await queuedIds(all)).toEqual(all)
  })
})
