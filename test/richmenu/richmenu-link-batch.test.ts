import { HTTPFetchError } from '@line/bot-sdk'
import { UnrecoverableError } from 'bullmq'
import { beforeAll, describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import { linkRichMenus } from '../../src/richmenu/richmenu-link.service.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
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

const world = useLinkWorld()
let deps: Deps
let line: LinePlatform
let menus: LinkWorld['menus']
beforeAll(() => {
  ;({ deps, line, menus } = world)
})

describe('linkRichMenus', () => {
  it("links each friend to their segment's menu: vip, linked, member, new friend, a merged customer's survivor", async () => {
    await settle(world)
    const vip = await simFriend(world, { tier: 'gold', purchase_count: 3 })
    // Linked: an active account link (a shop customer id alone is none: see richmenu-link.test).
    const linked = await simFriend(world, { purchase_count: 1 })
    await deps.db
      .insertInto('account_link')
      .values({
        line_user_id: linked.lineUserId,
        customer_id: linked.customerId,
        identity_kind: 'email',
      })
      .execute()
    const member = await simFriend(world, { purchase_count: 1, tier: 'silver' })
    const fresh = await simFriend(world)
    // A customer merged into the member: their LINE user follows the survivor's segment.
    const merged = await simFriend(world, { merged_into_id: member.customerId })

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
    expect(bulkLinks(line)).toEqual([
      {
        richMenuId: menus.member.richMenuId,
        userIds: expect.arrayContaining([member.lineUid, merged.lineUid]),
      },
    ])
    expect(line.requestsTo('POST', /^\/v2\/bot\/user\/U[0-9a-f]+\/richmenu\//)).toHaveLength(3)
    expect(await recorded(deps, merged.lineUserId)).toBe(menus.member.versionId)
    expect(await recorded(deps, vip.lineUserId)).toBe(menus.vip.versionId)
    expectNoRejectedRequests(line)

    // Nothing changed: nothing is asked of LINE.
    line.clearRequests()
    expect(await linkRichMenus(deps, [vip.lineUserId, merged.lineUserId])).toMatchObject({
      calls: 0,
    })
    expect(line.requests).toHaveLength(0)
  })

  it('skips blocked friends and erased customers', async () => {
    await settle(world)
    const blocked = await insertFriend(deps, { status: 'blocked' })
    const erased = await insertFriend(deps, { customer: { erased: true } })
    const counts = await linkRichMenus(deps, [blocked.lineUserId, erased.lineUserId])
    expect(counts.calls).toBe(0)
    expect(line.requests).toHaveLength(0)
    expect(await recorded(deps, blocked.lineUserId)).toBeNull()
    expect(await recorded(deps, erased.lineUserId)).toBeNull()
  })

  it('gives a friend whose segment has no live menu the next segment that fits: a vip gets member', async () => {
    await settle(world)
    const vip = await simFriend(world, { tier: 'gold', purchase_count: 3 })
    const vips = [
      await simFriend(world, { tier: 'gold', purchase_count: 2 }),
      await simFriend(world, { tier: 'gold', purchase_count: 4 }),
    ]
    // A linked vip: linked comes before member.
    const linkedVip = await simFriend(world, { tier: 'gold', purchase_count: 1 })
    await deps.db
      .insertInto('account_link')
      .values({
        line_user_id: linkedVip.lineUserId,
        customer_id: linkedVip.customerId,
        identity_kind: 'email',
      })
      .execute()
    // The vip folder was removed: its version retired.
    await retireMenus(deps, [menus.vip.versionId])
    try {
      await linkRichMenus(deps, [vip.lineUserId, linkedVip.lineUserId])
      expect(line.richMenuOf(vip.lineUid)).toBe(menus.member.richMenuId)
      expect(await recorded(deps, vip.lineUserId)).toBe(menus.member.versionId)
      expect(line.richMenuOf(linkedVip.lineUid)).toBe(menus.linked.richMenuId)
      expect(line.requestsTo('DELETE', /^\/v2\/bot\/user\//)).toHaveLength(0)

      // The relink's statement chooses alike.
      line.clearRequests()
      await relinkRichMenus(deps)
      expect(bulkLinks(line)).toEqual([
        {
          richMenuId: menus.member.richMenuId,
          userIds: expect.arrayContaining(vips.map((u) => u.lineUid)),
        },
      ])
      expect(line.requestsTo('POST', '/v2/bot/richmenu/bulk/unlink')).toHaveLength(0)
      for (const u of vips) expect(await recorded(deps, u.lineUserId)).toBe(menus.member.versionId)
    } finally {
      await deps.db
        .updateTable('richmenu_version')
        .set({ retired_at: null })
        .where('id', '=', menus.vip.versionId)
        .execute()
    }
    await settle(world)
    expect(line.richMenuOf(vip.lineUid)).toBe(menus.vip.richMenuId)
  })

  it('unlinks when no segment that fits has a live menu any more (the default applies)', async () => {
    await settle(world)
    const one = await simFriend(world, { purchase_count: 2 })
    await linkRichMenus(deps, [one.lineUserId])
    expect(line.richMenuOf(one.lineUid)).toBe(menus.member.richMenuId)
    const others = [
      await simFriend(world, { purchase_count: 1 }),
      await simFriend(world, { purchase_count: 1 }),
    ]
    await linkRichMenus(
      deps,
      others.map((u) => u.lineUserId),
    )

    // No segment that fits them (member, new_friend) has a live menu any more.
    const gone = [menus.member.versionId, menus.new_friend.versionId]
    await retireMenus(deps, gone)
    try {
      line.clearRequests()
      await linkRichMenus(deps, [one.lineUserId])
      expect(line.requestsTo('DELETE', `/v2/bot/user/${one.lineUid}/richmenu`)).toHaveLength(1)
      expect(line.richMenuOf(one.lineUid)).toBeUndefined()
      expect(await recorded(deps, one.lineUserId)).toBeNull()

      // More than one: bulk unlink.
      await linkRichMenus(
        deps,
        others.map((u) => u.lineUserId),
      )
      expect(line.requestsTo('POST', '/v2/bot/richmenu/bulk/unlink').map((r) => r.body)).toEqual([
        { userIds: expect.arrayContaining(others.map((u) => u.lineUid)) },
      ])
      for (const u of others) expect(await recorded(deps, u.lineUserId)).toBeNull()
    } finally {
      await deps.db
        .updateTable('richmenu_version')
        .set({ retired_at: null })
        .where('id', 'in', gone)
        .execute()
    }
  })

  it('leaves the rows as they were and fails the job when LINE refuses (400: a menu without an image)', async () => {
    const imageless = await createLiveMenu(deps, ['new_friend'], { image: false })
    try {
      const fresh = await simFriend(world)
      await expect(linkRichMenus(deps, [fresh.lineUserId])).rejects.toMatchObject({ status: 400 })
      const [call] = line.requestsTo(
        'POST',
        `/v2/bot/user/${fresh.lineUid}/richmenu/${imageless.richMenuId}`,
      )
      expect(call?.status).toBe(400)
      expect(await recorded(deps, fresh.lineUserId)).toBeNull()
    } finally {
      await retireMenus(deps, [imageless.versionId])
    }
  })

  it('links the others one by one when LINE refuses a bulk call (one bad user id)', async () => {
    await settle(world)
    const [a, b, c] = [await simFriend(world), await simFriend(world), await simFriend(world)]
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
    expect(await recorded(deps, a.lineUserId)).toBe(menus.new_friend.versionId)
    expect(await recorded(deps, c.lineUserId)).toBe(menus.new_friend.versionId)
    // Refused alone: settled for this version, not sent at every relink.
    expect(await recorded(deps, b.lineUserId)).toBe(menus.new_friend.versionId)
  })

  it('links the others when one LINE user id among them is malformed; that one is settled, not sent again', async () => {
    await settle(world)
    const [a, c] = [await simFriend(world), await simFriend(world)]
    // A stored id LINE never issued (a hand-made webhook or test row: see the report).
    const bad = await insertFriend(deps, { lineUid: 'U-not-a-line-id' })
    const ids = [a.lineUserId, bad.lineUserId, c.lineUserId]
    const counts = await linkRichMenus(deps, ids)
    expect(counts).toMatchObject({ linked: 2, rejected: 1 })
    expect(line.richMenuOf(a.lineUid)).toBe(menus.new_friend.richMenuId)
    expect(line.richMenuOf(c.lineUid)).toBe(menus.new_friend.richMenuId)
    expect(await recorded(deps, a.lineUserId)).toBe(menus.new_friend.versionId)
    expect(await recorded(deps, c.lineUserId)).toBe(menus.new_friend.versionId)

    // The next link job (and every relink) leaves it alone: LINE would refuse it again.
    line.clearRequests()
    expect(await linkRichMenus(deps, ids)).toMatchObject({ calls: 0 })
    expect(line.requests).toHaveLength(0)
  })

  it('links again someone another job linked while its call was under way', async () => {
    await settle(world)
    const racer = await simFriend(world)
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
    expect(await recorded(deps, racer.lineUserId)).toBe(menus.member.versionId)
    expect(line.richMenuOf(racer.lineUid)).toBe(menus.member.richMenuId)
  })

  it('throws on a 5xx or 429 so the job is retried, and records nothing for that call', async () => {
    await settle(world)
    const a = await simFriend(world)
    const b = await simFriend(world)
    /** LINE's error, as it came: BullMQ retries anything but an UnrecoverableError. */
    const expectRetried = async (job: Promise<unknown>, status: number) => {
      await expect(job).rejects.toThrow(HTTPFetchError)
      await expect(job).rejects.toMatchObject({ status })
      await expect(job).rejects.not.toBeInstanceOf(UnrecoverableError)
    }
    line.failNext({ method: 'POST', path: '/v2/bot/richmenu/bulk/link', status: 500 })
    await expectRetried(linkRichMenus(deps, [a.lineUserId, b.lineUserId]), 500)
    expect(await recorded(deps, a.lineUserId)).toBeNull()
    line.failNext({
      method: 'POST',
      path: '/v2/bot/richmenu/bulk/link',
      status: 429,
      body: { message: 'The API rate limit has been exceeded. Try again later.' },
    })
    await expectRetried(linkRichMenus(deps, [a.lineUserId, b.lineUserId]), 429)
    expect(await recorded(deps, b.lineUserId)).toBeNull()

    // The retry links them.
    await linkRichMenus(deps, [a.lineUserId, b.lineUserId])
    expect(await recorded(deps, a.lineUserId)).toBe(menus.new_friend.versionId)
    expect(line.richMenuOf(b.lineUid)).toBe(menus.new_friend.richMenuId)
  })
})
