import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { refreshSpend } from '../../src/maintenance/refresh-spend.jobs.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { relink } from '../../src/richmenu/richmenu-link.jobs.ts'
import {
  enqueueRelink,
  linkRichMenus,
  relinkRichMenus,
} from '../../src/richmenu/richmenu-link.service.ts'
import { findMismatchedFriends } from '../../src/richmenu/richmenu-segment.repo.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import {
  createLiveMenu,
  insertFriend,
  type LiveMenu,
  retireMenus,
} from './richmenu-link-fixtures.ts'

const cleanups: (() => Promise<void>)[] = []
let deps: Deps
let line: LinePlatform
const menus = {} as Record<'new_friend' | 'member' | 'linked' | 'vip', LiveMenu>

beforeAll(async () => {
  ;({ deps, line } = await startPrivateDeps(cleanups))
  menus.new_friend = await createLiveMenu(deps, ['new_friend'])
  menus.member = await createLiveMenu(deps, ['member'])
  menus.linked = await createLiveMenu(deps, ['linked'])
  menus.vip = await createLiveMenu(deps, ['vip'])
})
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})
beforeEach(() => {
  line.clearRequests()
  line.clearFailures()
})

const bulkLinks = () =>
  line
    .requestsTo('POST', '/v2/bot/richmenu/bulk/link')
    .map((r) => r.body as { richMenuId: string; userIds: string[] })
const recorded = async (lineUserId: string) =>
  (
    await deps.db
      .selectFrom('line_user')
      .select(['richmenu_version_id', 'richmenu_linked_at'])
      .where('id', '=', lineUserId)
      .executeTakeFirstOrThrow()
  ).richmenu_version_id

/** A friend on the stand-in too, so that its per-user link shows there. */
async function simFriend(
  customer: NonNullable<Parameters<typeof insertFriend>[1]>['customer'] = {},
) {
  const user = line.users.create()
  user.friendship = 'friend'
  return insertFriend(deps, { lineUid: user.userId, customer })
}

/** Brings every friend's menu in line, so that each test starts from no mismatch. */
async function settle() {
  await relinkRichMenus(deps)
  line.clearRequests()
}

describe('linkRichMenus', () => {
  it("links each friend to their segment's menu: vip, linked, member, new friend, a merged customer's survivor", async () => {
    await settle()
    const vip = await simFriend({ tier: 'gold', purchase_count: 3 })
    // Linked: an active account link (a shop customer id alone is none: see richmenu-link.test).
    const linked = await simFriend({ purchase_count: 1 })
    await deps.db
      .insertInto('account_link')
      .values({
        line_user_id: linked.lineUserId,
        customer_id: linked.customerId,
        identity_kind: 'email',
      })
      .execute()
    const member = await simFriend({ purchase_count: 1, tier: 'silver' })
    const fresh = await simFriend()
    // A customer merged into the member: their LINE user follows the survivor's segment.
    const merged = await simFriend({ merged_into_id: member.customerId })

    const counts = await linkRichMenus(
      deps,
      [vip, linked, member, fresh, merged].map((u) => u.lineUserId),
    )
    expect(counts).toMatchObject({ linked: 5, unlinked: 0, rejected: 0 })

    expect(line.richMenuOf(vip.lineUid)).toBe(menus.vip.richMenuId)
    expect(line.richMenuOf(linked.lineUid)).toBe(menus.linked.richMenuId)
    expect(line.richMenuOf(member.lineUid)).toBe(menus.member.richMenuId)
    expect(line.richMenuOf(fresh.lineUid)).toBe(menus.new_friend.richMenuId)
    expect(line.richMenuOf(merged.lineUid)).toBe(menus.member.richMenuId)
    // Two want the member menu: one bulk call; the others one per-user call each.
    expect(bulkLinks()).toEqual([
      {
        richMenuId: menus.member.richMenuId,
        userIds: expect.arrayContaining([member.lineUid, merged.lineUid]),
      },
    ])
    expect(line.requestsTo('POST', /^\/v2\/bot\/user\/U[0-9a-f]+\/richmenu\//)).toHaveLength(3)
    expect(await recorded(merged.lineUserId)).toBe(menus.member.versionId)
    expect(await recorded(vip.lineUserId)).toBe(menus.vip.versionId)
    expectNoRejectedRequests(line)

    // Nothing changed: nothing is asked of LINE.
    line.clearRequests()
    expect(await linkRichMenus(deps, [vip.lineUserId, merged.lineUserId])).toMatchObject({
      calls: 0,
    })
    expect(line.requests).toHaveLength(0)
  })

  it('skips blocked friends and erased customers', async () => {
    await settle()
    const blocked = await insertFriend(deps, { status: 'blocked' })
    const erased = await insertFriend(deps, { customer: { erased: true } })
    const counts = await linkRichMenus(deps, [blocked.lineUserId, erased.lineUserId])
    expect(counts.calls).toBe(0)
    expect(line.requests).toHaveLength(0)
    expect(await recorded(blocked.lineUserId)).toBeNull()
    expect(await recorded(erased.lineUserId)).toBeNull()
  })

  it('unlinks when no live menu serves the segment any more (the default applies)', async () => {
    await settle()
    const one = await simFriend({ purchase_count: 2 })
    await linkRichMenus(deps, [one.lineUserId])
    expect(line.richMenuOf(one.lineUid)).toBe(menus.member.richMenuId)
    const others = [await simFriend({ purchase_count: 1 }), await simFriend({ purchase_count: 1 })]
    await linkRichMenus(
      deps,
      others.map((u) => u.lineUserId),
    )

    await retireMenus(deps, [menus.member.versionId])
    try {
      line.clearRequests()
      await linkRichMenus(deps, [one.lineUserId])
      expect(line.requestsTo('DELETE', `/v2/bot/user/${one.lineUid}/richmenu`)).toHaveLength(1)
      expect(line.richMenuOf(one.lineUid)).toBeUndefined()
      expect(await recorded(one.lineUserId)).toBeNull()

      // More than one: bulk unlink.
      await linkRichMenus(
        deps,
        others.map((u) => u.lineUserId),
      )
      expect(line.requestsTo('POST', '/v2/bot/richmenu/bulk/unlink').map((r) => r.body)).toEqual([
        { userIds: expect.arrayContaining(others.map((u) => u.lineUid)) },
      ])
      for (const u of others) expect(await recorded(u.lineUserId)).toBeNull()
    } finally {
      await deps.db
        .updateTable('richmenu_version')
        .set({ retired_at: null })
        .where('id', '=', menus.member.versionId)
        .execute()
    }
  })

  it('leaves the rows as they were when LINE refuses (400: a menu without an image)', async () => {
    const imageless = await createLiveMenu(deps, ['new_friend'], { image: false })
    try {
      const fresh = await simFriend()
      const counts = await linkRichMenus(deps, [fresh.lineUserId])
      expect(counts).toMatchObject({ linked: 0, rejected: 1, calls: 1 })
      const [call] = line.requestsTo(
        'POST',
        `/v2/bot/user/${fresh.lineUid}/richmenu/${imageless.richMenuId}`,
      )
      expect(call?.status).toBe(400)
      expect(await recorded(fresh.lineUserId)).toBeNull()
    } finally {
      await retireMenus(deps, [imageless.versionId])
    }
  })

  it('links the others one by one when LINE refuses a bulk call (one bad user id)', async () => {
    await settle()
    const [a, b, c] = [await simFriend(), await simFriend(), await simFriend()]
    line.failNext({ method: 'POST', path: '/v2/bot/richmenu/bulk/link', status: 400 })
    line.failNext({
      method: 'POST',
      path: `/v2/bot/user/${b.lineUid}/richmenu/${menus.new_friend.richMenuId}`,
      status: 400,
    })
    const counts = await linkRichMenus(deps, [a.lineUserId, b.lineUserId, c.lineUserId])
    expect(counts).toMatchObject({ linked: 2, rejected: 1, calls: 4 })
    expect(line.richMenuOf(a.lineUid)).toBe(menus.new_friend.richMenuId)
    expect(line.richMenuOf(c.lineUid)).toBe(menus.new_friend.richMenuId)
    expect(await recorded(a.lineUserId)).toBe(menus.new_friend.versionId)
    expect(await recorded(c.lineUserId)).toBe(menus.new_friend.versionId)
    expect(await recorded(b.lineUserId)).toBeNull()
  })

  it('links again someone another job linked while its call was under way', async () => {
    await settle()
    const racer = await simFriend()
    await deps.db
      .updateTable('line_user')
      .set({ richmenu_version_id: null, richmenu_linked_at: null })
      .where('id', '=', racer.lineUserId)
      .execute()
    // Job A: LINE links the new_friend menu at once, but its answer takes 300 ms.
    const slowPath = `/v2/bot/user/${racer.lineUid}/richmenu/${menus.new_friend.richMenuId}`
    line.failNext({ method: 'POST', path: slowPath, status: 200, timeoutMs: 300, carriedOut: true })
    const jobA = linkRichMenus(deps, [racer.lineUserId])
    await expect.poll(() => line.requestsTo('POST', slowPath).length).toBe(1)
    // Meanwhile a first purchase makes them a member, and job B links and records that.
    await deps.db
      .updateTable('customer')
      .set({ purchase_count: 1 })
      .where('id', '=', racer.customerId)
      .execute()
    await linkRichMenus(deps, [racer.lineUserId])
    expect(line.richMenuOf(racer.lineUid)).toBe(menus.member.richMenuId)
    await jobA

    // A's record would say new_friend while LINE shows member: A links them again instead.
    expect(await recorded(racer.lineUserId)).toBe(menus.member.versionId)
    expect(line.richMenuOf(racer.lineUid)).toBe(menus.member.richMenuId)
  })

  it('throws on a 5xx or 429 so the job is retried, and records nothing for that call', async () => {
    await settle()
    const a = await simFriend()
    const b = await simFriend()
    line.failNext({ method: 'POST', path: '/v2/bot/richmenu/bulk/link', status: 500 })
    await expect(linkRichMenus(deps, [a.lineUserId, b.lineUserId])).rejects.toThrow()
    expect(await recorded(a.lineUserId)).toBeNull()
    line.failNext({
      method: 'POST',
      path: '/v2/bot/richmenu/bulk/link',
      status: 429,
      body: { message: 'The API rate limit has been exceeded. Try again later.' },
    })
    await expect(linkRichMenus(deps, [a.lineUserId, b.lineUserId])).rejects.toThrow()
    expect(await recorded(b.lineUserId)).toBeNull()

    // The retry links them.
    await linkRichMenus(deps, [a.lineUserId, b.lineUserId])
    expect(await recorded(a.lineUserId)).toBe(menus.new_friend.versionId)
    expect(line.richMenuOf(b.lineUid)).toBe(menus.new_friend.richMenuId)
  })
})

describe('richmenu.relink', () => {
  it('relinks 1,200 mismatched friends in 3 bulk calls (500/500/200); a second relink calls nothing', async () => {
    await settle()
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
    const calls = bulkLinks()
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
    expect(await recorded(blocked.lineUserId)).toBeNull()
    expectNoRejectedRequests(line)

    line.clearRequests()
    const again = await relinkRichMenus(deps)
    expect(again.calls).toBe(0)
    expect(line.requests).toHaveLength(0)
  })

  it('follows a deploy: friends of a replaced menu move to the new version', async () => {
    await settle()
    const a = await simFriend({ purchase_count: 1 })
    const b = await simFriend({ purchase_count: 1 })
    await linkRichMenus(deps, [a.lineUserId, b.lineUserId])
    // A new member menu went live (helper B's deploy), the old one not yet retired: the newest wins.
    const next = await createLiveMenu(deps, ['member'])
    line.clearRequests()
    const counts = await relinkRichMenus(deps)
    expect(counts.linked).toBeGreaterThanOrEqual(2)
    expect(line.richMenuOf(a.lineUid)).toBe(next.richMenuId)
    expect(await recorded(b.lineUserId)).toBe(next.versionId)
    await retireMenus(deps, [next.versionId])
    await settle()
    expect(line.richMenuOf(a.lineUid)).toBe(menus.member.richMenuId)
  })

  it('is queued by the nightly spend refresh, once a day', async () => {
    await deps.queues.byName.richmenu.drain()
    await refreshSpend.run(deps, {}, undefined as never)
    await refreshSpend.run(deps, {}, undefined as never)
    const jobs = await deps.queues.byName.richmenu.getJobs(['wait'])
    const day = deps.clock.now().toISOString().slice(0, 10)
    expect(jobs.map((j) => [j.name, j.id])).toEqual([
      ['richmenu.relink', `richmenu-relink-refresh-spend-${day}`],
    ])
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

describe('findMismatchedFriends', () => {
  it('pages by line_user id across scan windows, finding every mismatch once', async () => {
    await settle()
    const wanted = [await simFriend(), await simFriend({ purchase_count: 1 }), await simFriend()]
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
