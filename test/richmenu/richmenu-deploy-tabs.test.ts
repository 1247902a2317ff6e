import { beforeEach, describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import {
  deployRichMenus,
  type RichMenuDeploySummary,
} from '../../src/richmenu/richmenu-deploy.service.ts'
import { checkBulkLink } from '../../src/richmenu/richmenu-link-check.service.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import { type MenuSeed, type MenusFolder, useDeployWorld } from './richmenu-deploy-fixtures.ts'
import { bulkLinks, insertFriend, recorded } from './richmenu-link-fixtures.ts'

const world = useDeployWorld()
let deps: Deps
let line: LinePlatform
let folder: MenusFolder
beforeEach(() => {
  ;({ deps, line, folder } = world)
})

const liveId = async (name: string) => {
  const row = await deps.db
    .selectFrom('richmenu_version')
    .selectAll()
    .where('name', '=', name)
    .where('retired_at', 'is', null)
    .executeTakeFirstOrThrow()
  return { versionId: row.id, richMenuId: row.line_rich_menu_id }
}

/**
 * `welcome` (the default), `member` with a tab switch to `member-more` and back, deployed; a
 * member friend (on the stand-in too) linked to member's menu.
 */
async function memberWithTab(welcome: MenuSeed) {
  await folder.write('welcome', welcome)
  await folder.write('member', { segments: ['member'], alias: 'member', switchTo: 'member-more' })
  await folder.write('member-more', { alias: 'member-more', switchTo: 'member', shade: 61 })
  await deployRichMenus(deps, { dir: folder.dir })
  const user = line.users.create()
  user.friendship = 'friend'
  const friend = await insertFriend(deps, { lineUid: user.userId, customer: { purchase_count: 1 } })
  await relinkRichMenus(deps)
  const member = await liveId('member')
  expect(line.richMenuOf(user.userId)).toBe(member.richMenuId)
  return { user, friend, member }
}

describe('deployRichMenus, tabs', () => {
  it('re-links the people showing a tab whose menu a deploy replaces', async () => {
    const { user, friend, member } = await memberWithTab({
      segments: ['new_friend'],
      default: true,
      shade: 60,
    })
    // They tap the member menu's tab: the LINE app links the tab's menu to them.
    user.richMenuId = (await liveId('member-more')).richMenuId ?? undefined

    await folder.write('member-more', { alias: 'member-more', switchTo: 'member', shade: 62 })
    const changes: RichMenuDeploySummary[] = []
    const summary = await deployRichMenus(deps, {
      dir: folder.dir,
      afterChange: async (s) => {
        changes.push(s)
      },
    })
    expect(summary.deleted).toEqual(['member-more'])
    expect(changes).toHaveLength(1)
    expect(await recorded(deps, friend.lineUserId)).toBeNull()

    await relinkRichMenus(deps)
    expect(line.richMenuOf(user.userId)).toBe(member.richMenuId)
  })

  it('re-links the people showing a tab whose menu LINE lost, once checkLine made it again', async () => {
    const { user, member } = await memberWithTab({
      segments: ['new_friend'],
      default: true,
      shade: 60,
    })
    const tab = await liveId('member-more')
    user.richMenuId = tab.richMenuId ?? undefined

    // Deleted by another tool: LINE unlinks everyone showing it (the default shows).
    await deps.line.client.deleteRichMenu(tab.richMenuId ?? '')
    expect(line.richMenuOf(user.userId)).toBe((await liveId('welcome')).richMenuId)

    const summary = await deployRichMenus(deps, { dir: folder.dir, checkLine: true })
    expect(summary.changed).toBe(true)
    await relinkRichMenus(deps)
    expect(line.richMenuOf(user.userId)).toBe(member.richMenuId)
  })

  it('re-links nobody when the deleted menu was no tab (no segments, no alias: a default)', async () => {
    const { friend, member } = await memberWithTab({ default: true, shade: 60 })

    // The default's image changes: its old menu is deleted, which no tab switch ever showed.
    await folder.write('welcome', { default: true, shade: 62 })
    const summary = await deployRichMenus(deps, { dir: folder.dir })
    expect(summary.deleted).toEqual(['welcome'])
    expect(await recorded(deps, friend.lineUserId)).toBe(member.versionId)

    line.clearRequests()
    const counts = await relinkRichMenus(deps)
    expect(counts).toMatchObject({ linked: 0, calls: 0 })
    expect(line.requests).toEqual([])
  })

  it('re-links nobody when LINE lost a menu no alias names (a default)', async () => {
    const { friend, member } = await memberWithTab({ default: true, shade: 60 })

    // Deleted by another tool: nobody showed it through a switch.
    await deps.line.client.deleteRichMenu((await liveId('welcome')).richMenuId ?? '')
    const summary = await deployRichMenus(deps, { dir: folder.dir, checkLine: true })
    expect(summary.created).toEqual(['welcome'])
    expect(await recorded(deps, friend.lineUserId)).toBe(member.versionId)
  })

  it("re-links the people showing another segment's menu as a tab when it is replaced", async () => {
    await folder.write('welcome', { segments: ['new_friend'], default: true, shade: 60 })
    await folder.write('member', { segments: ['member'], alias: 'member', switchTo: 'vip' })
    await folder.write('vip', { segments: ['vip'], alias: 'vip', switchTo: 'member', shade: 61 })
    await deployRichMenus(deps, { dir: folder.dir })
    const user = line.users.create()
    user.friendship = 'friend'
    await insertFriend(deps, { lineUid: user.userId, customer: { purchase_count: 1 } })
    await relinkRichMenus(deps)
    const member = await liveId('member')
    // A member taps the switch: LINE links vip's menu (an alias target with segments) to them.
    user.richMenuId = (await liveId('vip')).richMenuId ?? undefined

    await folder.write('vip', { segments: ['vip'], alias: 'vip', switchTo: 'member', shade: 62 })
    const summary = await deployRichMenus(deps, { dir: folder.dir })
    expect(summary.deleted).toEqual(['vip'])
    await relinkRichMenus(deps)
    expect(line.richMenuOf(user.userId)).toBe(member.richMenuId)
  })

  it("leaves alone, when a bulk link is checked, whoever opened another segment's menu by a switch", async () => {
    await folder.write('welcome', { segments: ['new_friend'], default: true, shade: 60 })
    await folder.write('member', { segments: ['member'], alias: 'member', switchTo: 'vip' })
    await folder.write('vip', { segments: ['vip'], alias: 'vip', switchTo: 'member', shade: 61 })
    await deployRichMenus(deps, { dir: folder.dir })
    // Versions recorded before their switches were: the next deploy, unchanged, records them.
    await deps.db.updateTable('richmenu_version').set({ switch_aliases: [] }).execute()
    expect(await deployRichMenus(deps, { dir: folder.dir })).toMatchObject({ created: [] })
    const switches = await deps.db
      .selectFrom('richmenu_version')
      .select(['name', 'switch_aliases'])
      .orderBy('name')
      .execute()
    expect(switches).toEqual([
      { name: 'member', switch_aliases: ['vip'] },
      { name: 'vip', switch_aliases: ['member'] },
      { name: 'welcome', switch_aliases: [] },
    ])
    const members = []
    for (let i = 0; i < 2; i++) {
      const user = line.users.create()
      user.friendship = 'friend'
      const friend = await insertFriend(deps, {
        lineUid: user.userId,
        customer: { purchase_count: 1 },
      })
      members.push({ user, friend })
    }
    await relinkRichMenus(deps)
    const member = await liveId('member')
    expect(bulkLinks(line)).toEqual([expect.objectContaining({ richMenuId: member.richMenuId })])
    // One of them taps the switch: LINE links vip's menu (an alias target with segments).
    const [tapper, stays] = members
    const vip = (await liveId('vip')).richMenuId ?? undefined
    if (tapper) tapper.user.richMenuId = vip

    line.clearRequests()
    const job = {
      versionId: member.versionId,
      lineUserIds: members.map((m) => m.friend.lineUserId),
    }
    expect(await checkBulkLink(deps, job)).toEqual({ checked: 2, missed: 0, linked: 0, unknown: 0 })
    expect(line.requestsTo('POST', /richmenu/)).toEqual([])
    expect(line.richMenuOf(tapper?.user.userId ?? '')).toBe(vip)
    expect(line.richMenuOf(stays?.user.userId ?? '')).toBe(member.richMenuId)
  })
})

describe('checkBulkLink, tabs of the version linked', () => {
  it("links again whoever LINE still shows another segment's menu that only other menus' switches open", async () => {
    // New friends see a vip teaser tab; the vip menu switches to the member menu; the member
    // menu has no switch: a member cannot open the vip menu from theirs.
    await folder.write('welcome', {
      segments: ['new_friend'],
      default: true,
      alias: 'welcome',
      switchTo: 'vip',
      shade: 60,
    })
    await folder.write('member', { segments: ['member'], alias: 'member' })
    await folder.write('vip', { segments: ['vip'], alias: 'vip', switchTo: 'member', shade: 61 })
    await deployRichMenus(deps, { dir: folder.dir })
    const friends = async (n: number, customer: { purchase_count: number }) => {
      const out = []
      for (let i = 0; i < n; i++) {
        const user = line.users.create()
        user.friendship = 'friend'
        out.push({ user, friend: await insertFriend(deps, { lineUid: user.userId, customer }) })
      }
      return out
    }
    const members = await friends(2, { purchase_count: 1 })
    const newcomers = await friends(2, { purchase_count: 0 })
    await relinkRichMenus(deps)
    const member = await liveId('member')
    const welcome = await liveId('welcome')
    const vip = (await liveId('vip')).richMenuId ?? undefined
    expect(bulkLinks(line).map((l) => l.richMenuId)).toEqual(
      expect.arrayContaining([member.richMenuId, welcome.richMenuId]),
    )
    // A vip dropped to member: LINE accepted the bulk link (202) and never carried it out for
    // one of them, who still shows the vip menu.
    const [dropped, linked] = members
    if (dropped) dropped.user.richMenuId = vip
    // A new friend taps the teaser: LINE links the vip menu to them.
    const [tapper, stays] = newcomers
    if (tapper) tapper.user.richMenuId = vip

    line.clearRequests()
    const check = (versionId: string, of: typeof members) =>
      checkBulkLink(deps, { versionId, lineUserIds: of.map((m) => m.friend.lineUserId) })
    expect(await check(member.versionId, members)).toEqual({
      checked: 2,
      missed: 1,
      linked: 1,
      unknown: 0,
    })
    expect(line.richMenuOf(dropped?.user.userId ?? '')).toBe(member.richMenuId)
    expect(await recorded(deps, dropped?.friend.lineUserId ?? '')).toBe(member.versionId)
    expect(line.richMenuOf(linked?.user.userId ?? '')).toBe(member.richMenuId)

    line.clearRequests()
    expect(await check(welcome.versionId, newcomers)).toEqual({
      checked: 2,
      missed: 0,
      linked: 0,
      unknown: 0,
    })
    expect(line.requestsTo('POST', /richmenu/)).toEqual([])
    expect(line.richMenuOf(tapper?.user.userId ?? '')).toBe(vip)
    expect(line.richMenuOf(stays?.user.userId ?? '')).toBe(welcome.richMenuId)
  })

  it("leaves alone whoever reached another segment's menu through a tab of the version's", async () => {
    // member → member-more (a tab of no segment) → vip, and back.
    await folder.write('welcome', { segments: ['new_friend'], default: true, shade: 60 })
    await folder.write('member', { segments: ['member'], alias: 'member', switchTo: 'member-more' })
    await folder.write('member-more', { alias: 'member-more', switchTo: 'vip', shade: 61 })
    await folder.write('vip', { segments: ['vip'], alias: 'vip', switchTo: 'member', shade: 62 })
    await deployRichMenus(deps, { dir: folder.dir })
    const user = line.users.create()
    user.friendship = 'friend'
    const friend = await insertFriend(deps, {
      lineUid: user.userId,
      customer: { purchase_count: 1 },
    })
    await relinkRichMenus(deps)
    const member = await liveId('member')
    expect(line.richMenuOf(user.userId)).toBe(member.richMenuId)
    const vip = (await liveId('vip')).richMenuId ?? undefined
    user.richMenuId = vip

    line.clearRequests()
    const job = { versionId: member.versionId, lineUserIds: [friend.lineUserId] }
    expect(await checkBulkLink(deps, job)).toEqual({ checked: 1, missed: 0, linked: 0, unknown: 0 })
    expect(line.requestsTo('POST', /richmenu/)).toEqual([])
    expect(line.richMenuOf(user.userId)).toBe(vip)
  })
})
