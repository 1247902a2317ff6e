import { setTimeout as delay } from 'node:timers/promises'
import { sql } from 'kysely'
import { beforeAll, describe, expect, it } from 'vitest'
import { createMailer } from '../../src/email/mailer.ts'
import { jobIds } from '../../src/jobs.ts'
import { createProcessors } from '../../src/main/processors.ts'
import { refreshSpend } from '../../src/maintenance/refresh-spend.jobs.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { createWorkerRedis } from '../../src/platform/redis.ts'
import { startWorkers } from '../../src/platform/workers.ts'
import { relink } from '../../src/richmenu/richmenu-link.jobs.ts'
import { enqueueRelink, linkRichMenus } from '../../src/richmenu/richmenu-link.service.ts'
import { readRelinkOwed } from '../../src/richmenu/richmenu-relink.repo.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import { findMismatchedFriends } from '../../src/richmenu/richmenu-segment.repo.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { eventually } from '../support/wait.ts'
import {
  bulkLinks,
  createLiveMenu,
  insertFriend,
  type LinkWorld,
  recorded,
  retireMenus,
  settle,
  simFriend,
  useLinkWorld,
} from './richmenu-link-fixtures.ts'

// linkRichMenus itself: richmenu-link-batch.test.ts. findMismatchedFriends pages through the
// 1,200 friends the relink test adds.
const world = useLinkWorld()
let deps: Deps
let line: LinePlatform
let menus: LinkWorld['menus']
beforeAll(() => {
  ;({ deps, line, menus } = world)
})

describe('richmenu.relink', () => {
  it('relinks 1,200 mismatched friends in 3 bulk calls (500/500/200); a second relink calls nothing', async () => {
    await settle(world)
    await sql`with c as (
        insert into customer (purchase_count) select 0 from generate_series(1, 1200) returning id
      )
      insert into line_user (customer_id, line_uid, status, status_changed_at)
      select id, 'U' || replace(gen_random_uuid()::text, '-', ''), 'friend', now() from c`.execute(
      deps.db,
    )
    // Blocked among them: never linked.
    const blocked = await insertFriend(deps, { status: 'blocked' })

    await relink.run(deps, {}, undefined as never)
    const calls = bulkLinks(line)
    expect(calls.map((c) => c.userIds.length)).toEqual([500, 500, 200])
    expect(new Set(calls.map((c) => c.richMenuId))).toEqual(new Set([menus.new_friend.richMenuId]))
    expect(new Set(calls.flatMap((c) => c.userIds)).size).toBe(1200)
    const { n } = await deps.db
      .selectFrom('line_user')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('richmenu_version_id', '=', menus.new_friend.versionId)
      .where('richmenu_linked_at', 'is not', null)
      .executeTakeFirstOrThrow()
    expect(Number(n)).toBeGreaterThanOrEqual(1200)
    expect(await recorded(deps, blocked.lineUserId)).toBeNull()
    expectNoRejectedRequests(line)

    line.clearRequests()
    const again = await relinkRichMenus(deps)
    expect(again.calls).toBe(0)
    expect(line.requests).toHaveLength(0)
  })

  it('follows a deploy: friends of a replaced menu move to the new version', async () => {
    await settle(world)
    const a = await simFriend(world, { purchase_count: 1 })
    const b = await simFriend(world, { purchase_count: 1 })
    await linkRichMenus(deps, [a.lineUserId, b.lineUserId])
    // A new member menu went live (helper B's deploy), the old one not yet retired: the newest wins.
    const next = await createLiveMenu(deps, ['member'])
    line.clearRequests()
    const counts = await relinkRichMenus(deps)
    expect(counts.linked).toBeGreaterThanOrEqual(2)
    expect(line.richMenuOf(a.lineUid)).toBe(next.richMenuId)
    expect(await recorded(deps, b.lineUserId)).toBe(next.versionId)
    await retireMenus(deps, [next.versionId])
    await settle(world)
    expect(line.richMenuOf(a.lineUid)).toBe(menus.member.richMenuId)
  })

  it('owes a relink that finds another under way and returns at once; that one runs again at its end', async () => {
    await settle(world)
    const friends = [await simFriend(world), await simFriend(world), await simFriend(world)]
    // The first relink's bulk link waits at LINE, its users not yet recorded.
    const held = line.holdNext({ method: 'POST', path: '/v2/bot/richmenu/bulk/link' })
    const first = relinkRichMenus(deps)
    let second: Awaited<ReturnType<typeof relinkRichMenus>> | 'waiting'
    let late: Awaited<ReturnType<typeof simFriend>>
    try {
      await held.arrived
      // A purchase the first relink's pages did not see: only a pass after it links them.
      late = await simFriend(world, { purchase_count: 1 })
      // The second neither waits for the first (a worker slot and a connection held meanwhile)
      // nor sends what the first is sending.
      second = await Promise.race([
        relinkRichMenus(deps),
        delay(3_000).then(() => 'waiting' as const),
      ])
      expect(await waitsOnAdvisoryLock()).toBe(false)
      expect((await readRelinkOwed(deps.db)).owed).toBe(true)
    } finally {
      held.release()
    }
    expect(second).toMatchObject({ passes: 0, calls: 0 })
    expect(await first).toMatchObject({ passes: 2 })

    expect(bulkLinks(line)).toEqual([
      {
        richMenuId: menus.new_friend.richMenuId,
        userIds: expect.arrayContaining(friends.map((f) => f.lineUid)),
      },
    ])
    expect(bulkLinks(line)[0]?.userIds).toHaveLength(friends.length)
    for (const f of friends)
      expect(await recorded(deps, f.lineUserId)).toBe(menus.new_friend.versionId)
    expect(line.richMenuOf(late.lineUid)).toBe(menus.member.richMenuId)
    expect(await recorded(deps, late.lineUserId)).toBe(menus.member.versionId)
    expect((await readRelinkOwed(deps.db)).owed).toBe(false)
  })

  it("keeps the richmenu queue's slots free: a follow's link runs while a relink waits at LINE and another was queued", async () => {
    await settle(world)
    await deps.queues.byName.richmenu.drain()
    await simFriend(world)
    await simFriend(world)
    const held = line.holdNext({ method: 'POST', path: '/v2/bot/richmenu/bulk/link' })
    const cleanups: (() => Promise<void>)[] = []
    try {
      const redis = createWorkerRedis(deps.env.REDIS_URL)
      cleanups.push(async () => redis.disconnect())
      const mailer = createMailer(deps.env, deps.db, { sandbox: false })
      cleanups.push(async () => mailer.close())
      const processors = createProcessors(deps, { mailer, deployRichMenus: false })
      const workers = startWorkers(deps, processors, redis, { queues: ['richmenu'] })
      cleanups.push(() => workers.close())

      await enqueueRelink(deps, 'slots-first')
      await held.arrived
      await enqueueRelink(deps, 'slots-second')
      // The richmenu queue runs two jobs at once: the second relink must not keep its slot.
      const follower = await simFriend(world, { purchase_count: 1 })
      await deps.queues.enqueue(
        'richmenu.link-users',
        { lineUserIds: [follower.lineUserId] },
        { jobId: jobIds.richMenuLink([follower.lineUserId], 'slots') },
      )
      // Well within LINE_TIMEOUT_MS (10 s), after which the held call fails and frees its slot.
      await eventually(async () => {
        expect(line.richMenuOf(follower.lineUid)).toBe(menus.member.richMenuId)
        const secondJob = await deps.queues.byName.richmenu.getJob('richmenu-relink-slots-second')
        expect(await secondJob?.getState()).toBe('completed')
      }, 5_000)
    } finally {
      held.release()
      for (const cleanup of cleanups.reverse()) await cleanup()
    }
  })

  it('is queued by each nightly spend refresh, once for the run', async () => {
    await deps.queues.byName.richmenu.drain()
    await refreshSpend.run(deps, {}, undefined as never)
    await refreshSpend.run(deps, {}, undefined as never)
    const jobs = await deps.queues.byName.richmenu.getJobs(['wait'])
    // One per run, named by the run's start: a run the same day (a catch-up, a retry) that moved
    // tiers after the first relink finished still relinks them.
    expect(jobs.map((j) => j.name)).toEqual(['richmenu.relink', 'richmenu.relink'])
    const ids = jobs.map((j) => j.id ?? '')
    for (const id of ids) expect(id).toMatch(/^richmenu-relink-refresh-spend-\d+$/)
    expect(new Set(ids).size).toBe(2)
    await deps.queues.byName.richmenu.drain()
  })

  it('is queued once per cause', async () => {
    await enqueueRelink(deps, 'deploy-x1')
    await enqueueRelink(deps, 'deploy-x1')
    // (The delayed checks of the bulk links above wait beside it.)
    const jobs = await deps.queues.byName.richmenu.getJobs(['wait', 'delayed'])
    const relinks = jobs.filter((j) => j.name === 'richmenu.relink')
    expect(relinks.map((j) => j.id)).toEqual(['richmenu-relink-deploy-x1'])
  })
})

/** A statement of this database waits for an advisory lock (another relink's). */
async function waitsOnAdvisoryLock() {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
    where datname = current_database() and wait_event_type = 'Lock'
      and query like '%pg_advisory_lock%'`.execute(deps.db)
  return (rows[0]?.n ?? 0) > 0
}

describe('findMismatchedFriends', () => {
  it('pages by line_user id across scan windows, finding every mismatch once', async () => {
    await settle(world)
    const wanted = [
      await simFriend(world),
      await simFriend(world, { purchase_count: 1 }),
      await simFriend(world),
    ]
    // A version nobody wants any more, recorded for three of the settled friends.
    const stale = await createLiveMenu(deps, ['new_friend'])
    await retireMenus(deps, [stale.versionId])
    const settled = await deps.db
      .selectFrom('line_user')
      .select('id')
      .where('status', '=', 'friend')
      .where('richmenu_version_id', 'is not', null)
      .orderBy('id')
      .limit(3)
      .execute()
    await deps.db
      .updateTable('line_user')
      .set({ richmenu_version_id: stale.versionId })
      .where(
        'id',
        'in',
        settled.map((r) => r.id),
      )
      .execute()
    const expected = [...wanted.map((w) => w.lineUserId), ...settled.map((r) => r.id)].sort()

    const found: string[] = []
    let afterId: string | null = null
    let pages = 0
    do {
      const page: Awaited<ReturnType<typeof findMismatchedFriends>> = await findMismatchedFriends(
        deps.db,
        { afterId, limit: 2, topTier: 'gold', window: 97 },
      )
      found.push(...page.rows.map((r) => r.id))
      afterId = page.nextAfterId
      pages++
    } while (afterId)
    expect(found).toEqual(expected)
    expect(pages).toBeGreaterThan(12) // 1,200+ rows in windows of 97
  })
})
