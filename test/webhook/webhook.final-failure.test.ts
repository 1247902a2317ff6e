import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { createLogger } from '../../src/platform/logger.ts'
import {
  MAX_UNREACHABLE_ROUNDS,
  processWebhookEvent,
  processWebhookEvents,
} from '../../src/webhook/webhook.jobs.ts'
import { insertWebhookBodies } from '../../src/webhook/webhook.repo.ts'
import { logSink } from '../support/log-sink.ts'
import { startPrivateDeps, waitingWebhookJobs } from '../support/private-deps.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

/** Every consent change fails, as a bug would. */
async function refuseConsentChanges(db: Database) {
  await sql`create function refuse() returns trigger language plpgsql as
    $$ begin raise exception 'consent is broken'; end $$`.execute(db)
  await sql`create trigger refuse before insert or update on consent
    for each row execute function refuse()`.execute(db)
}

/** Every new friend's insert times out, which reads like an unreachable database. */
async function timeOutNewFriends(db: Database) {
  await sql`create function time_out() returns trigger language plpgsql as
    $$ begin raise exception 'canceling statement due to statement timeout'
       using errcode = '57014'; end $$`.execute(db)
  await sql`create trigger time_out before insert on line_user
    for each row execute function time_out()`.execute(db)
}

/**
 * Its own database, where a trigger makes every consent change fail, as a bug would; a friend's
 * opt-out, then their unfollow, stored and not yet processed.
 */
async function optOutThenUnfollow() {
  const { deps, line } = await startPrivateDeps(cleanups)
  await refuseConsentChanges(deps.db)
  const user = line.users.create()
  user.friendship = 'friend'
  const t = Date.now() - 60_000
  const follow = line.buildEvent('follow', user.userId, {}, { timestamp: t })
  await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([follow]))])
  await processWebhookEvent(deps, follow.webhookEventId)
  const optout = line.buildEvent(
    'postback',
    user.userId,
    { data: 'action=optout' },
    { timestamp: t + 1_000 },
  )
  const unfollow = line.buildEvent('unfollow', user.userId, {}, { timestamp: t + 2_000 })
  await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([optout, unfollow]))])
  const data = { webhookEventIds: [optout.webhookEventId, unfollow.webhookEventId] }
  return { deps, user, optout, unfollow, data }
}

/** A database nobody answers at (connections refused). */
function unreachableDatabase(): Database {
  const pool = new pg.Pool({ host: '127.0.0.1', port: 1, connectionTimeoutMillis: 1_000 })
  const unreachable = new Kysely<never>({ dialect: new PostgresDialect({ pool }) })
  cleanups.push(() => unreachable.destroy())
  return unreachable as unknown as Database
}

/** The statuses of these stored events. */
async function statusesOf(db: Database, webhookEventIds: string[]) {
  const rows = await db
    .selectFrom('webhook_event')
    .select('status')
    .where('webhook_event_id', 'in', webhookEventIds)
    .execute()
  return rows.map((r) => r.status)
}

async function lineStatusOf(db: Database, lineUid: string) {
  const row = await db
    .selectFrom('line_user')
    .select('status')
    .where('line_uid', '=', lineUid)
    .executeTakeFirstOrThrow()
  return row.status
}

describe('webhook.process-events, given up on', () => {
  it("fails only the event that failed; the user's later unfollow is still applied", async () => {
    const { deps, user, optout, unfollow, data } = await optOutThenUnfollow()
    // Every attempt fails on the opt-out; the unfollow waits behind it. Then BullMQ gives up.
    const error = await processWebhookEvents.run(deps, data, {} as never).catch((e: Error) => e)
    expect(error).toBeInstanceOf(Error)
    await processWebhookEvents.onFinalFailure?.(deps, data, error as Error)

    const rows = await deps.db
      .selectFrom('webhook_event')
      .select(['webhook_event_id', 'status'])
      .where('webhook_event_id', 'in', data.webhookEventIds)
      .execute()
    const statusOf = (id: string) => rows.find((r) => r.webhook_event_id === id)?.status
    expect(statusOf(optout.webhookEventId)).toBe('failed')
    expect(statusOf(unfollow.webhookEventId)).toBe('pending')
    // The unfollow went to a job of its own.
    const queued = (await waitingWebhookJobs(deps)).flat()
    expect(queued).toEqual([unfollow.webhookEventId])
    // Which holds it while it waits, however long ago it arrived: no sweep queues it again.
    await deps.db
      .updateTable('webhook_event')
      .set({ received_at: new Date(Date.now() - 60_000) })
      .where('webhook_event_id', '=', unfollow.webhookEventId)
      .execute()
    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 0 })
    await processWebhookEvents.run(deps, { webhookEventIds: queued }, {} as never)
    expect(await lineStatusOf(deps.db, user.userId)).toBe('blocked')
  }, 60_000)

  it('leaves the events pending when Postgres is unreachable as the job is given up on, whatever failed it', async () => {
    const { deps, data } = await optOutThenUnfollow()
    // Every attempt fails on the opt-out (a bug, not an outage); then Postgres goes away, and
    // BullMQ gives up.
    const error = await processWebhookEvents.run(deps, data, {} as never).catch((e: Error) => e)
    const logs = logSink()
    const down = {
      ...deps,
      db: unreachableDatabase(),
      log: createLogger('info', logs.sink),
    }
    await expect(
      processWebhookEvents.onFinalFailure?.(down, data, error as Error),
    ).resolves.toBeUndefined()
    expect(logs.entries()).toEqual([
      expect.objectContaining({ level: 40, msg: 'webhook events left pending for the sweeper' }),
    ])
    expect(await statusesOf(deps.db, data.webhookEventIds)).toEqual(['pending', 'pending'])
  }, 60_000)

  it('blames no other event when a second job holding the failed one gives up after it was settled', async () => {
    const { deps, user, unfollow, data } = await optOutThenUnfollow()
    // The inbox's job and the sweeper's copy of it both fail on the opt-out, every attempt.
    const run = () => processWebhookEvents.run(deps, data, {} as never).catch((e: Error) => e)
    const [first, second] = [await run(), await run()]
    await processWebhookEvents.onFinalFailure?.(deps, data, first as Error)
    await processWebhookEvents.onFinalFailure?.(deps, data, second as Error)

    const unfollowRow = await deps.db
      .selectFrom('webhook_event')
      .select('status')
      .where('webhook_event_id', '=', unfollow.webhookEventId)
      .executeTakeFirstOrThrow()
    expect(unfollowRow.status).toBe('pending')
    for (const ids of await waitingWebhookJobs(deps)) {
      await processWebhookEvents.run(deps, { webhookEventIds: ids }, {} as never)
    }
    expect(await lineStatusOf(deps.db, user.userId)).toBe('blocked')
  }, 60_000)

  it('blames no event when the job failed before any of them ran', async () => {
    const { deps, user, data } = await optOutThenUnfollow()
    await sql`drop trigger refuse on consent`.execute(deps.db)
    // The job's lanes cannot be read (a bug in the query, not an outage); fixed by the end.
    await sql`alter table webhook_event rename column occurred_at to occurred`.execute(deps.db)
    const error = await processWebhookEvents.run(deps, data, {} as never).catch((e: Error) => e)
    await sql`alter table webhook_event rename column occurred to occurred_at`.execute(deps.db)
    await processWebhookEvents.onFinalFailure?.(deps, data, error as Error)

    // Both left pending, for the sweeper's job, which applies them.
    expect(await statusesOf(deps.db, data.webhookEventIds)).toEqual(['pending', 'pending'])
    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 2 })
    for (const ids of await waitingWebhookJobs(deps)) {
      await processWebhookEvents.run(deps, { webhookEventIds: ids }, {} as never)
    }
    expect(await lineStatusOf(deps.db, user.userId)).toBe('blocked')
  }, 60_000)

  it("fails only the event whose own error was real; another user's that found Postgres unreachable waits for the sweeper", async () => {
    // One user's opt-out fails on a bug (a trigger); another user's follow times out as if
    // Postgres were unreachable. The job ends with both errors in one AggregateError.
    const { deps, line } = await startPrivateDeps(cleanups)
    const known = line.users.create()
    known.friendship = 'friend'
    const t = Date.now() - 60_000
    const first = line.buildEvent('follow', known.userId, {}, { timestamp: t })
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([first]))])
    await processWebhookEvent(deps, first.webhookEventId)
    await refuseConsentChanges(deps.db)
    await timeOutNewFriends(deps.db)

    const newcomer = line.users.create()
    newcomer.friendship = 'friend'
    const optout = line.buildEvent(
      'postback',
      known.userId,
      { data: 'action=optout' },
      { timestamp: t + 1_000 },
    )
    const follow = line.buildEvent('follow', newcomer.userId, {}, { timestamp: t + 1_000 })
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([optout, follow]))])
    const data = { webhookEventIds: [optout.webhookEventId, follow.webhookEventId] }
    const error = await processWebhookEvents.run(deps, data, {} as never).catch((e: Error) => e)
    expect(error).toBeInstanceOf(AggregateError)
    await processWebhookEvents.onFinalFailure?.(deps, data, error as Error)

    const rows = await deps.db
      .selectFrom('webhook_event')
      .select(['webhook_event_id', 'status', 'last_error'])
      .where('webhook_event_id', 'in', data.webhookEventIds)
      .execute()
    const rowOf = (id: string) => rows.find((r) => r.webhook_event_id === id)
    expect(rowOf(follow.webhookEventId)?.status).toBe('pending')
    expect(rowOf(optout.webhookEventId)).toMatchObject({ status: 'failed' })
    // Its own error, not the job's ("2 events failed").
    expect(rowOf(optout.webhookEventId)?.last_error).toContain('consent is broken')

    // Postgres answers again: the sweeper's job makes the newcomer a friend.
    await sql`drop trigger time_out on line_user`.execute(deps.db)
    await processWebhookEvents.run(deps, { webhookEventIds: [follow.webhookEventId] }, {} as never)
    expect(await lineStatusOf(deps.db, newcomer.userId)).toBe('friend')
  }, 60_000)

  it('leaves the events pending for the sweeper when Postgres was unreachable through every attempt', async () => {
    const { deps, line } = await startPrivateDeps(cleanups)
    const users = [line.users.create(), line.users.create()]
    const follows = users.map((u) => line.buildEvent('follow', u.userId, {}))
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope(follows))])
    const data = { webhookEventIds: follows.map((e) => e.webhookEventId) }

    // Every attempt finds Postgres refusing connections; it is back when BullMQ gives up.
    const down = { ...deps, db: unreachableDatabase() }
    const error = await processWebhookEvents.run(down, data, {} as never).catch((e: Error) => e)
    expect(error).toBeInstanceOf(Error)
    // Still down when BullMQ gives up, or back: either way nothing is failed.
    await processWebhookEvents.onFinalFailure?.(down, data, error as Error)
    await processWebhookEvents.onFinalFailure?.(deps, data, error as Error)

    // Neither follow ever ran: both wait for the sweeper, which applies them.
    expect(await statusesOf(deps.db, data.webhookEventIds)).toEqual(['pending', 'pending'])
    await processWebhookEvents.run(deps, data, {} as never)
    const friends = await deps.db
      .selectFrom('line_user')
      .select('status')
      .where(
        'line_uid',
        'in',
        users.map((u) => u.userId),
      )
      .execute()
    expect(friends.map((f) => f.status)).toEqual(['friend', 'friend'])
  }, 60_000)

  it('leaves an event that waited too long for a free connection pending, counted as nothing', async () => {
    // Postgres answers; every connection of the process is held by other work (a worker wants
    // ~80 concurrent transactions of a pool of 20), and the event's wait for one runs out.
    const { deps, env, line } = await startPrivateDeps(cleanups)
    const user = line.users.create()
    user.friendship = 'friend'
    const follow = line.buildEvent('follow', user.userId, {}, { timestamp: Date.now() - 60_000 })
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([follow]))])
    const data = { webhookEventIds: [follow.webhookEventId] }
    const attempts = async () =>
      await deps.db
        .selectFrom('webhook_event')
        .select(['status', 'attempts'])
        .where('webhook_event_id', '=', follow.webhookEventId)
        .executeTakeFirstOrThrow()
    const before = await attempts()

    const crowded = await createDb(env, { poolSize: 1 })
    cleanups.push(() => crowded.destroy())
    const { promise: holding, resolve: holds } = Promise.withResolvers<void>()
    const { promise: released, resolve: release } = Promise.withResolvers<void>()
    const held = crowded.transaction().execute(async (trx) => {
      await sql`select 1`.execute(trx)
      holds()
      await released
    })
    await holding
    const busy = { ...deps, db: crowded }
    const error = await processWebhookEvents.run(busy, data, {} as never).catch((e: Error) => e)
    release()
    await held
    expect(error).toBeInstanceOf(Error)
    expect((error as Error).message).toContain('timeout exceeded when trying to connect')
    await processWebhookEvents.onFinalFailure?.(deps, data, error as Error)

    // Waiting for the sweeper, as in an outage; not a round towards being failed for good.
    expect(await attempts()).toEqual(before)
    expect(before.status).toBe('pending')
    await processWebhookEvents.run(deps, data, {} as never)
    expect(await lineStatusOf(deps.db, user.userId)).toBe('friend')
  }, 60_000)

  it('gives up on an event that keeps failing as if Postgres were unreachable while it answers', async () => {
    // Every new friend's insert times out (a statement timeout reads like an unreachable database),
    // while Postgres itself answers: the sweeper must not queue the follow again forever.
    const { deps, line } = await startPrivateDeps(cleanups)
    await timeOutNewFriends(deps.db)
    const user = line.users.create()
    user.friendship = 'friend'
    const follow = line.buildEvent('follow', user.userId, {}, { timestamp: Date.now() - 60_000 })
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([follow]))])
    const data = { webhookEventIds: [follow.webhookEventId] }
    const row = () =>
      deps.db
        .selectFrom('webhook_event')
        .select(['status', 'last_error'])
        .where('webhook_event_id', '=', follow.webhookEventId)
        .executeTakeFirstOrThrow()

    // Each round: every attempt of the job fails, BullMQ gives up, the sweeper queues it again.
    for (let round = 1; round <= MAX_UNREACHABLE_ROUNDS; round++) {
      expect(await row()).toMatchObject({ status: 'pending' })
      const error = await processWebhookEvents.run(deps, data, {} as never).catch((e: Error) => e)
      expect(error).toBeInstanceOf(Error)
      await processWebhookEvents.onFinalFailure?.(deps, data, error as Error)
    }
    const given = await row()
    expect(given.status).toBe('failed')
    expect(given.last_error).toContain('statement timeout')
    expect(given.last_error).toContain(`${MAX_UNREACHABLE_ROUNDS} times`)
    expect(await sweepOnce(deps, 0)).toMatchObject({ events: 0 })
  }, 60_000)
})
