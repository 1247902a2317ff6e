import { beforeEach, describe, expect, it } from 'vitest'
import type { Deps } from '../../src/platform/deps.ts'
import { AppError } from '../../src/platform/errors.ts'
import { deployRichMenus } from '../../src/richmenu/richmenu-deploy.service.ts'
import { relinkRichMenus } from '../../src/richmenu/richmenu-relink.service.ts'
import type { LinePlatform } from '../../src/sandbox/platform.ts'
import {
  lineState,
  type MenuSeed,
  type MenusFolder,
  useDeployWorld,
} from './richmenu-deploy-fixtures.ts'
import { insertFriend } from './richmenu-link-fixtures.ts'

const world = useDeployWorld()
let deps: Deps
let line: LinePlatform
let folder: MenusFolder
beforeEach(() => {
  ;({ deps, line, folder } = world)
})

const liveVersion = (name: string) =>
  deps.db
    .selectFrom('richmenu_version')
    .selectAll()
    .where('name', '=', name)
    .where('deployed_at', 'is not', null)
    .where('retired_at', 'is', null)
    .executeTakeFirst()

/** A deploy that fails; its error. */
const stopped = (run: Promise<unknown>) =>
  run.then(
    () => {
      throw new Error('expected the deploy to stop')
    },
    (error: unknown) => error,
  )

/** LINE refuses (400) the next create of the menu `name`. */
const refuseCreateOf = (name: string) =>
  line.failNext({
    method: 'POST',
    path: '/v2/bot/richmenu',
    match: (r) => (r.body as { name?: string }).name === name,
    status: 400,
    body: { message: 'refused' },
  })

/** A friend on the stand-in whose LINE account is linked to an online account: `linked`. */
async function linkedFriend() {
  const user = line.users.create()
  user.friendship = 'friend'
  const friend = await insertFriend(deps, { lineUid: user.userId, customer: { purchase_count: 1 } })
  await deps.db
    .insertInto('account_link')
    .values({
      line_user_id: friend.lineUserId,
      customer_id: friend.customerId,
      identity_kind: 'email',
    })
    .execute()
  return user
}

/** The unlinks (per user or bulk) the stand-in received for this LINE user. */
const unlinksOf = (userId: string) => [
  ...line.requestsTo('DELETE', `/v2/bot/user/${userId}/richmenu`),
  ...line
    .requestsTo('POST', '/v2/bot/richmenu/bulk/unlink')
    .filter((r) => (r.body as { userIds: string[] }).userIds.includes(userId)),
]

describe('deployRichMenus, stopped between two folders', () => {
  // The worker's deploy queues a relink even when it stops: it runs here at once.
  const relinkAfter = { afterChange: async () => void (await relinkRichMenus(deps)) }

  it.each([
    [
      'LINE refuses the second create',
      () => {
        refuseCreateOf('online')
      },
    ],
    [
      "LINE's hourly create limit stops the second create",
      () => {
        line.setRateLimit('POST /v2/bot/richmenu', { capacity: 1, perMs: 3_600_000 })
      },
    ],
  ])(
    'keeps a segment on its menu when a folder taking it over is not made (%s)',
    async (_, stop) => {
      await folder.write('member', { segments: ['member', 'linked'], shade: 1 })
      await deployRichMenus(deps, { dir: folder.dir })
      const user = await linkedFriend()
      await relinkRichMenus(deps)
      const before = await liveVersion('member')
      expect(line.richMenuOf(user.userId)).toBe(before?.line_rich_menu_id)

      // The marketer moves `linked` from member to a new folder, online.
      await folder.write('member', { segments: ['member'], shade: 1 })
      await folder.write('online', { segments: ['linked'], shade: 2 })
      stop()
      const error = await stopped(deployRichMenus(deps, { dir: folder.dir, ...relinkAfter }))
      expect(error).toBeInstanceOf(AppError)
      line.setRateLimit('POST /v2/bot/richmenu', null)

      // member's old version (with `linked`) is still the live one: nobody of linked lost a menu.
      expect((await liveVersion('member'))?.id).toBe(before?.id)
      expect(line.richMenuOf(user.userId)).toBe(before?.line_rich_menu_id)
      expect(unlinksOf(user.userId)).toEqual([])

      // The next run finishes it: both new versions go live together, linked moves to online.
      const summary = await deployRichMenus(deps, { dir: folder.dir, ...relinkAfter })
      expect(summary.created).toEqual(['member', 'online'])
      expect(summary.retired).toEqual(['member'])
      const online = await liveVersion('online')
      expect(line.richMenuOf(user.userId)).toBe(online?.line_rich_menu_id)
      expect(unlinksOf(user.userId)).toEqual([])
      expect(lineState(line).menus).toContain(online?.line_rich_menu_id)
    },
  )
})

describe('deployRichMenus, the default and aliases after a stop and a revert', () => {
  it("leaves LINE's default on the live menu when a campaign that took it is reverted", async () => {
    await folder.write('new-friend', { segments: ['new_friend'], default: true, shade: 1 })
    await deployRichMenus(deps, { dir: folder.dir })
    const newFriend = await liveVersion('new-friend')

    // A campaign takes the default; new-friend's own change stops (LINE refuses its create).
    await folder.write('campaign', { segments: [], default: true, shade: 2 })
    await folder.write('new-friend', { segments: ['new_friend'], default: false, shade: 1 })
    refuseCreateOf('new-friend')
    await stopped(deployRichMenus(deps, { dir: folder.dir }))

    // Reverted: the campaign goes, new-friend is the default again (its live content).
    await folder.remove('campaign')
    await folder.write('new-friend', { segments: ['new_friend'], default: true, shade: 1 })
    await deployRichMenus(deps, { dir: folder.dir })
    expect(await liveVersion('new-friend')).toMatchObject({ id: newFriend?.id })
    expect(lineState(line)).toEqual({
      menus: [newFriend?.line_rich_menu_id],
      aliases: {},
      defaultRichMenuId: newFriend?.line_rich_menu_id,
    })
  })

  /** The new friends' menu, the default, that the alias `home` names. */
  const home = (shade: number): MenuSeed => ({
    segments: ['new_friend'],
    alias: 'home',
    default: true,
    shade,
  })

  it('points the default and an alias back at the live menus when the deploy that moved them stopped', async () => {
    await folder.write('welcome', home(1))
    await folder.write('more', { alias: 'more', shade: 2 })
    await deployRichMenus(deps, { dir: folder.dir })
    const welcome = await liveVersion('welcome')
    const more = await liveVersion('more')

    // welcome is replaced by a campaign holding its alias and the default; more changes too, and
    // its alias call fails after the campaign's alias and default were moved.
    await folder.remove('welcome')
    await folder.write('campaign', home(3))
    await folder.write('more', { alias: 'more', shade: 4 })
    line.failNext({
      method: 'POST',
      path: '/v2/bot/richmenu/alias',
      match: (r) => (r.body as { richMenuAliasId?: string }).richMenuAliasId === 'more',
      status: 500,
    })
    await stopped(deployRichMenus(deps, { dir: folder.dir }))

    // Reverted: welcome and more as they were, no campaign.
    await folder.remove('campaign')
    await folder.write('welcome', home(1))
    await folder.write('more', { alias: 'more', shade: 2 })
    const summary = await deployRichMenus(deps, { dir: folder.dir })
    expect(summary).toMatchObject({ created: [], unchanged: ['more', 'welcome'] })
    expect(lineState(line)).toEqual({
      menus: expect.arrayContaining([welcome?.line_rich_menu_id, more?.line_rich_menu_id]),
      aliases: { home: welcome?.line_rich_menu_id, more: more?.line_rich_menu_id },
      defaultRichMenuId: welcome?.line_rich_menu_id,
    })
    expect(lineState(line).menus).toHaveLength(2)

    // Settled: the next deploy makes no call.
    line.clearRequests()
    await deployRichMenus(deps, { dir: folder.dir })
    expect(line.requests).toEqual([])
  })
})
