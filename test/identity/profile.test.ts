import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { findProfilelessFriendOf } from '../../src/identity/identity.repo.ts'
import { fetchLineProfile, fetchWelcomeProfile } from '../../src/identity/profile.service.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { heldTransaction, lockWaitBehind, lockWaitOn, pausedErasure } from '../support/locks.ts'
import { logSink } from '../support/log-sink.ts'
import { eventually, eventuallyProcessed } from '../support/wait.ts'
import { profilelessFriend } from './profileless-friend.ts'

let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k.stopAll()
})
beforeEach(() => {
  k.line.clearRequests()
  k.line.clearFailures()
})

/** LINE answers the profile lookup only after `ms`: the fetch is under way meanwhile. */
function slowProfile(userId: string, displayName: string, ms: number) {
  k.line.failNext({
    method: 'GET',
    path: `/v2/bot/profile/${userId}`,
    timeoutMs: ms,
    status: 200,
    body: { userId, displayName, language: 'ja', pictureUrl: 'https://profile.line-scdn.net/x' },
  })
}

/** The erased person's LINE user and customer hold nothing of the profile fetched for them. */
async function expectNothingSaved(lineUser: { id: string; customer_id: string }) {
  const row = await k.deps.db
    .selectFrom('line_user')
    .select(['display_name', 'picture_url', 'language'])
    .where('id', '=', lineUser.id)
    .executeTakeFirstOrThrow()
  expect(row).toEqual({ display_name: null, picture_url: null, language: null })
  const customer = await k.deps.db
    .selectFrom('customer')
    .select(['display_name', 'erased_at'])
    .where('id', '=', lineUser.customer_id)
    .executeTakeFirstOrThrow()
  expect(customer).toEqual({ display_name: null, erased_at: expect.any(Date) })
}

describe('LINE profile fetch', () => {
  it("saves the profile and the customer's name together: never one without the other", async () => {
    const { lineUser } = await profilelessFriend(k, '佐藤 花子')
    const db = k.deps.db
    // The customer is held (a scan, say) when the profile comes back: the name waits for it.
    const held = await heldTransaction(db, async (trx) => {
      await trx
        .selectFrom('customer')
        .select('id')
        .where('id', '=', lineUser.customer_id)
        .forUpdate()
        .execute()
    })
    const fetching = fetchLineProfile(k.deps, lineUser)
    await lockWaitOn(db, 'customer')
    const saved = () =>
      db
        .selectFrom('line_user')
        .innerJoin('customer', 'customer.id', 'line_user.customer_id')
        .select(['line_user.display_name', 'customer.display_name as customer_name'])
        .select((eb) => eb('line_user.profile_fetched_at', 'is not', null).as('fetched'))
        .where('line_user.id', '=', lineUser.id)
        .executeTakeFirstOrThrow()
    // Seen as fetched now, the customer would keep no name should the worker stop here.
    expect(await saved()).toEqual({ display_name: null, customer_name: null, fetched: false })
    held.commit()
    await held.committed
    await fetching
    expect(await saved()).toEqual({
      display_name: '佐藤 花子',
      customer_name: '佐藤 花子',
      fetched: true,
    })
  })

  it('saves nothing of a profile that arrives after its person was erased', async () => {
    const { user, lineUser } = await profilelessFriend(k, '消える 人')
    slowProfile(user.userId, '消える 人', 700)
    const fetching = fetchLineProfile(k.deps, lineUser)
    await eventually(() =>
      expect(k.line.requestsTo('GET', `/v2/bot/profile/${user.userId}`)).toHaveLength(1),
    )
    await eraseCustomer(k.deps.db, lineUser.customer_id)
    await fetching
    await expectNothingSaved(lineUser)
  })

  it('saves a profile without a deadlock while its person is being erased', async () => {
    const { lineUser } = await profilelessFriend(k, '佐藤 花子')
    const db = k.deps.db
    // The erasure is paused once it holds the LINE user and the customer. The profile save comes
    // now, and the erasure goes on to the
    // line_user row. Saved with the row first and the customer then, the two waited for each
    // other and Postgres aborted the save (40P01): it takes the LINE user first, as the erasure
    // and every other writer of the LINE user do.
    const erasure = await pausedErasure(db, lineUser.customer_id)
    const fetching = fetchLineProfile(k.deps, lineUser)
    // The save waits behind the erasure.
    await lockWaitBehind(db, erasure.pid, 2)
    await erasure.release()

    await expect(fetching).resolves.toBeUndefined()
    expect((await erasure.erasing).alreadyErased).toBe(false)
    await expectNothingSaved(lineUser)
  })

  it('fetches again, on a follow back not flagged as an unblock, a profile LINE had none of while they were blocked', async () => {
    const { user, lineUser } = await profilelessFriend(k, '田中 三郎')
    // After the row's status time (now).
    const t = Date.now() + 1_000
    const unfollow = k.line.buildEvent('unfollow', user.userId, {}, { timestamp: t })
    expect((await k.line.deliverWebhook([unfollow])).status).toBe(200)
    await eventuallyProcessed(k.deps.db, unfollow.webhookEventId)
    // Fetched while blocked (the row as read then): LINE has nothing to give (404), saved as
    // fetched with nothing.
    user.friendship = 'blocked'
    const blocked = await k.deps.db
      .selectFrom('line_user')
      .selectAll()
      .where('id', '=', lineUser.id)
      .executeTakeFirstOrThrow()
    await fetchLineProfile(k.deps, blocked)
    const fetched = () =>
      k.deps.db
        .selectFrom('line_user')
        .select(['status', 'display_name'])
        .select((eb) => eb('profile_fetched_at', 'is not', null).as('fetched'))
        .where('id', '=', lineUser.id)
        .executeTakeFirstOrThrow()
    expect(await fetched()).toEqual({ status: 'blocked', display_name: null, fetched: true })

    // LINE's isUnblocked "doesn't guarantee complete accuracy" (LINE-API.md §1.5).
    user.friendship = 'friend'
    const follow = k.line.buildEvent('follow', user.userId, { isUnblocked: false } as never, {
      timestamp: t + 1_000,
    })
    expect((await k.line.deliverWebhook([follow])).status).toBe(200)
    await eventually(async () =>
      expect(await fetched()).toEqual({
        status: 'friend',
        display_name: '田中 三郎',
        fetched: true,
      }),
    )
  })

  it('fetches again a profile LINE had none of during a block the row never recorded, when the follow says unblocked', async () => {
    const { user, lineUser } = await profilelessFriend(k, '田中 四郎')
    const t = Date.now() + 1_000
    // Blocked at t, the unfollow still on its way: the row says friend, and LINE has no
    // profile to give (404), saved as fetched with nothing.
    user.friendship = 'blocked'
    await fetchLineProfile(k.deps, lineUser)
    const profileless = () => findProfilelessFriendOf(k.deps.db, lineUser.customer_id)
    expect(await profileless()).toBeUndefined()

    // Back; every profile call fails for now (LINE down): what is left to ask again shows.
    user.friendship = 'friend'
    const profilePath = `/v2/bot/profile/${user.userId}`
    k.line.failNext({ method: 'GET', path: profilePath, status: 500, count: Infinity })
    const follow = k.line.buildEvent('follow', user.userId, { isUnblocked: true } as never, {
      timestamp: t + 1_000,
    })
    expect((await k.line.deliverWebhook([follow])).status).toBe(200)
    await eventuallyProcessed(k.deps.db, follow.webhookEventId)
    // The unfollow arrives after the follow that ended its block: stale.
    const unfollow = k.line.buildEvent('unfollow', user.userId, {}, { timestamp: t })
    expect((await k.line.deliverWebhook([unfollow])).status).toBe(200)
    await eventuallyProcessed(k.deps.db, unfollow.webhookEventId)

    // A friend whose profile the welcome card and the sweeper fetch again, not only the job.
    expect(await profileless()).toMatchObject({ id: lineUser.id })
    k.line.clearFailures()
    await fetchWelcomeProfile(k.deps, lineUser.customer_id)
    const customer = await k.deps.db
      .selectFrom('customer')
      .select('display_name')
      .where('id', '=', lineUser.customer_id)
      .executeTakeFirstOrThrow()
    expect(customer.display_name).toBe('田中 四郎')
  })

  it('logs which LINE user a welcome card went without the profile for, by row id', async () => {
    const { user, lineUser } = await profilelessFriend(k, '遅い 人')
    slowProfile(user.userId, '遅い 人', 500)
    const logs = logSink()
    await fetchWelcomeProfile(
      { ...k.deps, log: createLogger('info', logs.sink) },
      lineUser.customer_id,
      50,
    )
    const warned = logs.entries().filter((e) => e.msg === 'welcome card sent without the profile')
    expect(warned).toMatchObject([{ lineUserRowId: lineUser.id }])
    expect(logs.lines.join('')).not.toContain(user.userId)
    // The fetch under way still saves it.
    await eventually(async () => {
      const row = await k.deps.db
        .selectFrom('line_user')
        .select('display_name')
        .where('id', '=', lineUser.id)
        .executeTakeFirstOrThrow()
      expect(row.display_name).toBe('遅い 人')
    })
  })
})
