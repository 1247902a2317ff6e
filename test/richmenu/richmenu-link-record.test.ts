import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import {
  forgetRichMenuOf,
  LINK_CHECK_DELAY_MS,
  linkRichMenus,
} from '../../src/richmenu/richmenu-link.service.ts'
import { checkBulkLink } from '../../src/richmenu/richmenu-link-check.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { switchRichMenu } from '../../src/sandbox/ui.richmenu.ts'
import { startPrivateDeps } from '../support/private-deps.ts'
import {
  createLiveMenu,
  insertFriend,
  type LiveMenu,
  recorded,
  retireMenus,
} from './richmenu-link-fixtures.ts'

/** The menu recorded for a LINE user stays what LINE shows them, whatever LINE did with a call. */
const cleanups: (() => Promise<void>)[] = []
let deps: Deps
let line: LinePlatform
let menu: LiveMenu

beforeAll(async () => {
  ;({ deps, line } = await startPrivateDeps(cleanups))
  menu = await createLiveMenu(deps, ['new_friend'])
})
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})
beforeEach(() => {
  line.clearRequests()
  line.clearFailures()
})

/** A friend on the stand-in and in Kizuna, no menu recorded yet. */
async function simFriend(purchases = 0) {
  const user = line.users.create()
  user.friendship = 'friend'
  return insertFriend(deps, { lineUid: user.userId, customer: { purchase_count: purchases } })
}

type Friend = Awaited<ReturnType<typeof simFriend>>

/** Three friends linked in one bulk call that LINE accepts (202) but skips `missedAt` in. */
async function bulkLinkThree(opts: { missedAt: 0 | 1 | 2; purchases?: number }) {
  const friends: [Friend, Friend, Friend] = [
    await simFriend(opts.purchases),
    await simFriend(opts.purchases),
    await simFriend(opts.purchases),
  ]
  line.missInNextBulkLink(friends[opts.missedAt].lineUid)
  await linkRichMenus(
    deps,
    friends.map((f) => f.lineUserId),
  )
  expect(line.requestsTo('POST', '/v2/bot/richmenu/bulk/link')).toHaveLength(1)
  return friends
}

describe('a link call LINE answered while the user blocked us', () => {
  it('is not recorded over the unblock that forgot the (empty) record: the user is linked', async () => {
    const racer = await simFriend()
    // Job A reads the row (nothing recorded) and calls LINE; the user has blocked meanwhile, so
    // LINE answers 200 and links nothing (LINE-API.md §4). Its answer takes 300 ms.
    const path = `/v2/bot/user/${racer.lineUid}/richmenu/${menu.richMenuId}`
    line.failNext({ method: 'POST', path, status: 200, body: {}, timeoutMs: 300 })
    const jobA = linkRichMenus(deps, [racer.lineUserId])
    await expect.poll(() => line.requestsTo('POST', path).length).toBe(1)
    // The unblock: the record is forgotten (it was empty already) and its link job queued.
    await forgetRichMenuOf(deps.db, racer.lineUserId)
    await jobA
    // The unblock's job: A's record must not make it think the menu is linked.
    await linkRichMenus(deps, [racer.lineUserId])

    expect(line.richMenuOf(racer.lineUid)).toBe(menu.richMenuId)
    expect(await recorded(deps, racer.lineUserId)).toBe(menu.versionId)
  })
})

describe('a link call answered after a deploy retired its menu', () => {
  it('is not recorded on the retired version: its users are linked to the live menu', async () => {
    const next = await createLiveMenu(deps, ['new_friend'])
    const friends = [await simFriend(), await simFriend()]
    const held = line.holdNext({ method: 'POST', path: '/v2/bot/richmenu/bulk/link' })
    const job = linkRichMenus(
      deps,
      friends.map((f) => f.lineUserId),
    )
    await held.arrived
    // A deploy replaces the menu: retired, and deleted at LINE as nobody was recorded on it.
    await deps.db
      .updateTable('richmenu_version')
      .set({ retired_at: new Date(), line_rich_menu_id: null })
      .where('id', '=', next.versionId)
      .execute()
    held.release()
    await job

    for (const f of friends) {
      expect(await recorded(deps, f.lineUserId)).toBe(menu.versionId)
      expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)
    }
    // The checks of its bulk links are not the next test's.
    await deps.queues.byName.richmenu.drain(true)
  })
})

describe('a bulk link LINE accepted (202) but did not carry out for someone', () => {
  it('is checked back later: the user LINE shows no menu is linked again', async () => {
    const friends = await bulkLinkThree({ missedAt: 1 })
    const [a, missed, c] = friends
    expect(line.richMenuOf(missed.lineUid)).toBeUndefined()
    expect(await recorded(deps, missed.lineUserId)).toBe(menu.versionId)

    // LINE carries a bulk link out within seconds: the check is queued for later.
    const checks = (await deps.queues.byName.richmenu.getJobs(['delayed'])).filter(
      (j) => j.name === 'richmenu.check-links',
    )
    expect(checks).toHaveLength(1)
    const [check] = checks
    expect(check?.opts.delay).toBe(LINK_CHECK_DELAY_MS)
    expect(check?.data).toEqual({
      versionId: menu.versionId,
      lineUserIds: expect.arrayContaining(friends.map((f) => f.lineUserId)),
    })

    line.clearRequests()
    expect(await checkBulkLink(deps, check?.data)).toEqual({
      checked: 3,
      missed: 1,
      linked: 1,
      unknown: 0,
    })
    expect(line.requestsTo('GET', /^\/v2\/bot\/user\/U[0-9a-f]+\/richmenu$/)).toHaveLength(3)
    // Linked again one call each (immediate at LINE: nothing more to check).
    expect(line.requestsTo('POST', /^\/v2\/bot\/user\/U[0-9a-f]+\/richmenu\//)).toEqual([
      expect.objectContaining({
        path: `/v2/bot/user/${missed.lineUid}/richmenu/${menu.richMenuId}`,
      }),
    ])
    expect(line.richMenuOf(missed.lineUid)).toBe(menu.richMenuId)
    expect(await recorded(deps, missed.lineUserId)).toBe(menu.versionId)
    for (const f of [a, c]) expect(line.richMenuOf(f.lineUid)).toBe(menu.richMenuId)

    // Checked again (a retried job): everyone shows the menu, nothing changes.
    line.clearRequests()
    expect(await checkBulkLink(deps, check?.data)).toMatchObject({ checked: 3, missed: 0 })
    expect(line.requestsTo('POST', /richmenu/)).toHaveLength(0)
  })

  it('leaves alone whoever opened a tab of the menu since, and links again whoever shows another segment menu', async () => {
    // The member menu switches to a tab (a menu of no segment, opened by its alias): the LINE
    // app links the tab to whoever taps it (LINE-API.md §3 richmenuswitch).
    const member = await createLiveMenu(deps, ['member'])
    const tab = await createLiveMenu(deps, [])
    await deps.line.client.createRichMenuAlias({
      richMenuAliasId: 'member-more',
      richMenuId: tab.richMenuId,
    })
    const members = await bulkLinkThree({ missedAt: 2, purchases: 1 })
    const [tapper, stays, elsewhere] = members
    await switchRichMenu(line, tapper.lineUid, 'member-more', 'action=tab&tab=member-more')
    // Left on the new-friend menu by the bulk link LINE did not carry out for them.
    await deps.line.client.linkRichMenuIdToUser(elsewhere.lineUid, menu.richMenuId)
    expect(line.richMenuOf(tapper.lineUid)).toBe(tab.richMenuId)

    line.clearRequests()
    const job = { versionId: member.versionId, lineUserIds: members.map((f) => f.lineUserId) }
    expect(await checkBulkLink(deps, job)).toEqual({ checked: 3, missed: 1, linked: 1, unknown: 0 })
    expect(line.richMenuOf(tapper.lineUid)).toBe(tab.richMenuId)
    expect(await recorded(deps, tapper.lineUserId)).toBe(member.versionId)
    expect(line.requestsTo('POST', /^\/v2\/bot\/user\/U[0-9a-f]+\/richmenu\//)).toEqual([
      expect.objectContaining({
        path: `/v2/bot/user/${elsewhere.lineUid}/richmenu/${member.richMenuId}`,
      }),
    ])
    for (const f of [stays, elsewhere]) expect(line.richMenuOf(f.lineUid)).toBe(member.richMenuId)
    await retireMenus(deps, [member.versionId, tab.versionId])
  })

  it('leaves out whoever blocked or was forgotten since, and throws on a 5xx to ask again', async () => {
    const friends = [await simFriend(), await simFriend(), await simFriend()]
    const [blocker, forgotten, kept] = friends as [Friend, Friend, Friend]
    await linkRichMenus(
      deps,
      friends.map((f) => f.lineUserId),
    )
    await deps.db
      .updateTable('line_user')
      .set({ status: 'blocked' })
      .where('id', '=', blocker.lineUserId)
      .execute()
    // Forgotten by an unblock, say: its own link job links them, not this check.
    await forgetRichMenuOf(deps.db, forgotten.lineUserId)
    const job = { versionId: menu.versionId, lineUserIds: friends.map((f) => f.lineUserId) }

    line.clearRequests()
    line.failNext({ method: 'GET', path: /\/richmenu$/, status: 500 })
    await expect(checkBulkLink(deps, job)).rejects.toThrow()
    expect(await checkBulkLink(deps, job)).toMatchObject({ checked: 1, missed: 0 })
    expect(line.requestsTo('GET', /\/richmenu$/).map((r) => r.path)).toEqual([
      `/v2/bot/user/${kept.lineUid}/richmenu`,
      `/v2/bot/user/${kept.lineUid}/richmenu`,
    ])
  })
})
