import { jobIds } from '../jobs.ts'
import type { Db } from '../platform/db.ts'
import type { Deps } from '../platform/deps.ts'
import { NIGHTLY_JOBS } from '../platform/workers.ts'
import {
  findRecentMaintenanceRuns,
  readDatabaseNow,
  recordMaintenanceRun,
} from './maintenance-run.repo.ts'

/**
 * A nightly run is missed when its last success started over 25 hours ago: a day, and an hour
 * for a run that waited behind a long job on the maintenance queue.
 */
const MISSED_AFTER_MS = 25 * 3_600_000

/**
 * Runs nightly job `name` (its scheduler id, NIGHTLY_JOBS) and records its success, as started
 * at the database's now(): catchUpNightlyRuns reads it.
 */
export async function runNightly<T>(db: Db, name: string, work: () => Promise<T>): Promise<T> {
  const startedAt = await readDatabaseNow(db)
  const result = await work()
  await recordMaintenanceRun(db, name, startedAt, {})
  return result
}

/**
 * At a worker's start: the nightly jobs that did not succeed in the last 25 hours (no worker
 * ran at their time, they failed, or they never ran) are queued at once, once a store day
 * (their job id). A run the schedule is about to make anyway repeats work that changes nothing
 * the second time. Returns the scheduler ids of those queued.
 */
export async function catchUpNightlyRuns(
  deps: Pick<Deps, 'db' | 'queues' | 'env' | 'clock' | 'log'>,
): Promise<string[]> {
  const ids = NIGHTLY_JOBS.map((job) => job.id)
  const recent = new Set(await findRecentMaintenanceRuns(deps.db, ids, MISSED_AFTER_MS))
  const missed = NIGHTLY_JOBS.filter((job) => !recent.has(job.id))
  const day = storeDate(deps.clock.now(), deps.env.TZ_STORE)
  for (const job of missed) {
    await deps.queues.enqueue(job.name, {}, { jobId: jobIds.nightlyCatchUp(job.id, day) })
  }
  if (missed.length > 0) {
    deps.log.info({ jobs: missed.map((job) => job.id) }, 'queued the nightly jobs missed')
  }
  return missed.map((job) => job.id)
}

/** `2026-12-08`: the day at the store (TZ_STORE). */
function storeDate(at: Date, timeZone: string): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone, dateStyle: 'short' }).format(at)
}
