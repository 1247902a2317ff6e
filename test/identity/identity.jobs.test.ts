import type { webhook } from '@line/bot-sdk'
import type { Job } from 'bullmq'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { fetchProfile } from '../../src/identity/identity.jobs.ts'
import { jobIds } from '../../src/jobs.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import type { Deps } from '../../src/platform/deps.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { processWebhookEvent } from '../../src/webhook/webhook.jobs.ts'
import { insertWebhookBodies } from '../../src/webhook/webhook.repo.ts'
import { backendPid, heldTransaction, lockWaitBehind, lockWaitFor } from '../support/locks.ts'
import { usePrivateDeps } from '../support/private-deps.ts'

// Its own database: the sweeper takes every profileless friend it sees. No workers: each
// profile job is run here, attempt by attempt, when the test says.
let deps: Deps
let line: LinePlatform
usePrivateDeps((privateDeps) => {
  ;({ deps, line } = privateDeps)
})

async function store(event: webhook.Event) {
  await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([event]))])
  return event.webhookEventId
}

/** Stores the event and applies it, as the webhook worker does (profile jobs are queued). */
async function apply(event: webhook.Event) {
  await processWebhookEvent(deps, await store(event))
}

const lineUserOf = (lineUid: string) =>
  deps.db
    .selectFrom('line_user')
    .selectAll()
    .where('line_uid', '=', lineUid)
    .executeTakeFirstOrThrow()

/** The profile job an event queued (its id names the event). */
async function profileJob(lineUserId: string, webhookEventId: string): Promise<Job> {
  const job = await deps.queues.byName.identity.getJob(jobIds.profile(lineUserId, webhookEventId))
  if (!job) throw new Error(`no profile job for event ${webhookEventId}`)
  return job
}

/** One attempt at the job, as a worker makes it. */
const attempt = (job: Job) =>
  fetchProfile.run(deps, job.data as { lineUserId: string }, { job } as never)

const profileCalls = (userId: string) => line.requestsTo('GET', `/v2/bot/profile/${userId}`)

/**
 * A friend (following since a minute ago, their profile never fetched) who blocked us 50 s ago
 * and whose profile was then fetched: LINE had none to give (404), saved as fetched with nothing.
 * Their unblocking follow, 40 s ago, is returned built, not yet sent.
 */
async function blockedFriendFetchedWhileBlocked(displayName: string) {
  const user = line.users.create({ displayName })
  user.friendship = 'friend'
  const t = Date.now() - 60_000
  const follow = line.buildEvent('follow', user.userId, {}, { timestamp: t })
  await apply(follow)
  await apply(line.buildEvent('unfollow', user.userId, {}, { timestamp: t + 10_000 }))
  const lineUser = await lineUserOf(user.userId)
  const unblock = line.buildEvent('follow', user.userId, { isUnblocked: true } as never, {
    timestamp: t + 20_000,
  })
  return { user, lineUser, firstJob: await profileJob(lineUser.id, follow.webhookEventId), unblock }
}

describe('identity.fetch-profile', () => {
  it('leaves a profile fetched while they were blocked to the sweeper once they are back, when the unblock job gives up', async () => {
    const { user, lineUser, firstJob, unblock } = await blockedFriendFetchedWhileBlocked('北村 葵')
    user.friendship = 'blocked'
    await attempt(firstJob)
    expect((await lineUserOf(user.userId)).profile_fetched_at).not.toBeNull()

    // Back, but LINE answers 500 to every profile call: the unblock's job fails all 5 attempts.
    user.friendship = 'friend'
    line.failNext({
      method: 'GET',
      path: `/v2/bot/profile/${user.userId}`,
      status: 500,
      count: Infinity,
    })
    await apply(unblock)
    const unblockJob = await profileJob(lineUser.id, unblock.webhookEventId)
    for (let i = 0; i < 5; i++) await expect(attempt(unblockJob)).rejects.toThrow()
    expect((await lineUserOf(user.userId)).display_name).toBeNull()

    // LINE answers again: the sweeper asks for the profile, and it is saved.
    line.clearFailures()
    await sweepOnce(deps, 0)
    const swept = (await deps.queues.byName.identity.getJobs(['wait'])).filter(
      (job) => job.data.lineUserId === lineUser.id && job.id?.includes('-sweep-'),
    )
    expect(swept).toHaveLength(1)
    await attempt(swept[0] as Job)
    expect((await lineUserOf(user.userId)).display_name).toBe('北村 葵')
  })

  it('still fetches on the unblock when a 404 asked for while they were blocked lands after it', async () => {
    const { user, lineUser, firstJob, unblock } = await blockedFriendFetchedWhileBlocked('南 翼')
    // The first follow's job (a retry, late) asks while they are blocked; LINE's 404 is slow.
    user.friendship = 'blocked'
    const hold = line.holdNext({ method: 'GET', path: `/v2/bot/profile/${user.userId}` })
    const asking = attempt(firstJob)
    await hold.arrived
    await apply(unblock)
    hold.release()
    await asking
    expect(profileCalls(user.userId).map((r) => r.status)).toEqual([404])

    user.friendship = 'friend'
    await attempt(await profileJob(lineUser.id, unblock.webhookEventId))
    expect(profileCalls(user.userId).map((r) => r.status)).toEqual([404, 200])
    expect((await lineUserOf(user.userId)).display_name).toBe('南 翼')
  })

  it('asks LINE nothing for someone erased after the event that queued it', async () => {
    const { user, lineUser, unblock } = await blockedFriendFetchedWhileBlocked('西 蓮')
    user.friendship = 'friend'
    await store(unblock)
    // The erasure starts while the unblock waits for its event (held here): the unblock is
    // applied first, queueing its profile job, and the erasure, waiting behind it, then commits
    // before that job runs.
    let pid = 0
    const held = await heldTransaction(deps.db, async (trx) => {
      pid = await backendPid(trx)
      await sql`select id from webhook_event where webhook_event_id = ${unblock.webhookEventId}
        for update`.execute(trx)
    })
    const applying = processWebhookEvent(deps, unblock.webhookEventId)
    await lockWaitFor(deps.db, pid)
    const erasing = eraseCustomer(deps.db, lineUser.customer_id)
    await lockWaitBehind(deps.db, pid, 2)
    held.commit()
    await held.committed
    await applying
    await erasing
    const erased = await deps.db
      .selectFrom('line_user')
      .select('line_uid')
      .where('id', '=', lineUser.id)
      .executeTakeFirstOrThrow()
    expect(erased.line_uid).toMatch(/^erased:/)

    // Its erasure began before the job was queued: only the tombstone tells the job.
    const job = await profileJob(lineUser.id, unblock.webhookEventId)
    await attempt(job)
    expect(line.requestsTo('GET', /\/v2\/bot\/profile\//)).toEqual([])
  })
})
