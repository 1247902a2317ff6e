import { randomUUID } from 'node:crypto'
import { closeDeps, createDeps } from '../../src/main/deps.ts'
import { migrateToLatest } from '../../src/main/migrate.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { startLinePlatform } from '../../src/sandbox/platform.ts'
import { TEST_CHANNEL_SECRET, TEST_CHANNEL_TOKEN, testEnv } from './harness.ts'
import { createPrivateDatabase } from './private-database.ts'

/**
 * Kizuna's deps (no server, no workers) on a migrated database of their own, with a LINE
 * stand-in and a private queue prefix: for tests that sweep, or change the schema. Each part's
 * cleanup is pushed onto `cleanups`, to run in reverse order.
 */
export async function startPrivateDeps(
  cleanups: (() => Promise<void>)[],
  envOverrides: Record<string, string> = {},
) {
  const database = await createPrivateDatabase()
  cleanups.push(() => database.drop())
  const line = await startLinePlatform({
    channelSecret: TEST_CHANNEL_SECRET,
    channelAccessToken: TEST_CHANNEL_TOKEN,
  })
  cleanups.push(() => line.close())
  const env = testEnv({
    DATABASE_URL: database.url,
    LINE_API_BASE_URL: line.apiBaseUrl,
    LINE_DATA_API_BASE_URL: line.dataApiBaseUrl,
    ...envOverrides,
  })
  const deps = await createDeps(env, { queuePrefix: `test-${randomUUID()}`, lineStandIn: true })
  cleanups.push(async () => {
    const queues = Object.values(deps.queues.byName)
    await Promise.all(queues.map((q) => q.obliterate({ force: true })))
    await closeDeps(deps)
  })
  await migrateToLatest(deps.db)
  return { deps, env, line }
}

/** The event ids of each webhook job waiting for a worker, a list per job. */
export async function waitingWebhookJobs(deps: Deps): Promise<string[][]> {
  const jobs = await deps.queues.byName.webhook.getJobs(['wait'])
  return jobs.map((job) => (job.data as { webhookEventIds: string[] }).webhookEventIds)
}
