import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { catchUpNightlyRuns } from '../../src/maintenance/nightly.service.ts'
import { pruneWebhookEvents } from '../../src/maintenance/prune-webhook-events.jobs.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { NIGHTLY_JOBS, scheduleSweeper } from '../../src/platform/workers.ts'
import { startTestKizuna } from '../support/harness.ts'
import { createPrivateDatabase } from '../support/private-database.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import { eventually } from '../support/wait.ts'

// The sweeper and the nightly jobs run on BullMQ Job Schedulers, scheduled at every worker start
// and Redis reconnect. BullMQ's upsert replaces the scheduler's next job: one already due (waiting
// behind a long job on the maintenance queue, or due while no worker ran) was removed, and a
// nightly one put back to the next night. Runs that were missed anyway are queued at start.

const cleanups: (() => Promise<void>)[] = []
let deps: Deps
beforeAll(async () => {
  // A database of its own: maintenance_run starts empty, as on a fresh install.
  ;({ deps } = await startPrivateDeps(cleanups))
})
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

const maintenance = () => deps.queues.byName.maintenance
const jobsOf = async (name: string, states: ('wait' | 'delayed')[]) =>
  (await maintenance().getJobs(states)).filter((job) => job.name === name)
const dbNow = async () =>
  (await sql<{ now: Date }>`select now() as now`.execute(deps.db)).rows[0]!.now.getTime()

describe('scheduleSweeper', () => {
  it('keeps the nightly run that is due and the sweep waiting when scheduled again', async () => {
    await scheduleSweeper(deps)
    const [prune] = await jobsOf('maintenance.prune-webhook-events', ['delayed'])
    // The first sweep is due at once.
    const [sweep] = await jobsOf('maintenance.sweep', ['wait'])
    // 04:45 came: BullMQ moved the job to wait, where it waits behind a long job.
    await prune!.promote()

    // A worker starts (or Redis reconnects).
    await scheduleSweeper(deps)
    await scheduleSweeper(deps, { onlyMissing: true })
    expect((await jobsOf('maintenance.prune-webhook-events', ['wait'])).map((j) => j.id)).toEqual([
      prune!.id,
    ])
    expect((await jobsOf('maintenance.prune-webhook-events', ['delayed'])).length).toBe(0)
    expect((await jobsOf('maintenance.sweep', ['wait'])).map((j) => j.id)).toEqual([sweep!.id])
  })

  it('reschedules a scheduler whose settings changed, and on a reconnect only a missing one', async () => {
    await scheduleSweeper(deps)
    const longer = { ...deps, env: { ...deps.env, SWEEP_INTERVAL_MS: 7_200_000 } }
    // A reconnect leaves the schedule as it is, even one set by another version.
    await scheduleSweeper(longer, { onlyMissing: true })
    expect((await maintenance().getJobScheduler('sweeper'))?.every).toBe(3_600_000)
    // A start with other settings changes it.
    await scheduleSweeper(longer)
    expect((await maintenance().getJobScheduler('sweeper'))?.every).toBe(7_200_000)
    await scheduleSweeper(deps)

    // Redis lost the schedule: a reconnect puts it back.
    await maintenance().removeJobScheduler('purge-link-rows')
    await scheduleSweeper(deps, { onlyMissing: true })
    expect(await maintenance().getJobScheduler('purge-link-rows')).toMatchObject({
      pattern: '50 4 * * *',
      tz: deps.env.TZ_STORE,
    })
    expect(await jobsOf('maintenance.purge-link-rows', ['delayed'])).toHaveLength(1)
  })
})

describe('catchUpNightlyRuns', () => {
  it('queues at once the nightly jobs whose last success is over 25 hours old, or never was', async () => {
    // A run records its success.
    const before = await dbNow()
    await pruneWebhookEvents.run(deps, {}, undefined as never)
    const pruned = await deps.db
      .selectFrom('maintenance_run')
      .select('last_success_at')
      .where('name', '=', 'prune-webhook-events')
      .executeTakeFirstOrThrow()
    expect(pruned.last_success_at.getTime()).toBeGreaterThanOrEqual(before)

    const hoursAgo = (hours: number) => new Date(before - hours * 3_600_000)
    await deps.db
      .insertInto('maintenance_run')
      .values([
        { name: 'refresh-spend', last_success_at: hoursAgo(24) },
        { name: 'forget-chunk-bodies', last_success_at: hoursAgo(26) },
      ])
      .execute()
    // purge-link-rows never ran.
    const queued = await catchUpNightlyRuns(deps)
    expect(queued.sort()).toEqual(['forget-chunk-bodies', 'purge-link-rows'])
    const waiting = async () =>
      (await maintenance().getJobs(['wait']))
        .filter((job) => job.id?.includes('catch-up'))
        .map((job) => job.name)
        .sort()
    expect(await waiting()).toEqual([
      'maintenance.forget-chunk-bodies',
      'maintenance.purge-link-rows',
    ])
    // A second worker starting the same day queues them once.
    await catchUpNightlyRuns(deps)
    expect(await waiting()).toHaveLength(2)
  })

  it('runs at the start of the workers of a fresh install, and each run records its success', async () => {
    const database = await createPrivateDatabase()
    cleanups.push(() => database.drop())
    const k = await startTestKizuna({ DATABASE_URL: database.url }, { catchUpNightly: true })
    cleanups.push(() => k.stopAll())
    await eventually(async () => {
      const runs = await k.deps.db.selectFrom('maintenance_run').select('name').execute()
      expect(runs.map((r) => r.name).sort()).toEqual([
        'forget-chunk-bodies',
        'prune-webhook-events',
        'purge-link-rows',
        'refresh-spend',
      ])
    })
  })
})

describe('nightly retries', () => {
  it('tries a nightly job for about an hour: 8 attempts, 30 s apart doubling', async () => {
    await scheduleSweeper(deps)
    // The queue's default is 5 attempts from 1 s: a Postgres outage of ~15 s at 04:15 failed
    // the night's run for good.
    const retries = { attempts: 8, backoff: { type: 'exponential', delay: 30_000 } }
    for (const job of NIGHTLY_JOBS) {
      const scheduler = await maintenance().getJobScheduler(job.id)
      expect(scheduler?.template?.opts).toMatchObject(retries)
      const [next] = (await jobsOf(job.name, ['delayed', 'wait'])).filter((j) =>
        j.id?.startsWith(`repeat:${job.id}:`),
      )
      expect(next?.opts).toMatchObject(retries)
    }
    // So are the runs the catch-up queued (above).
    const caughtUp = (await maintenance().getJobs(['wait'])).filter((j) =>
      j.id?.includes('catch-up'),
    )
    expect(caughtUp.length).toBeGreaterThan(0)
    for (const job of caughtUp) expect(job.opts).toMatchObject(retries)
    // The sweep keeps its one attempt.
    expect((await maintenance().getJobScheduler('sweeper'))?.template?.opts?.attempts).toBe(1)
  })
})
